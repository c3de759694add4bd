package main

import (
	"encoding/json"
	"sort"
	"strconv"
	"time"
)

// The CloudWatch Embedded Metric Format (EMF) line Vigil writes, with
// metrics = true in the policy, for each invocation that had any denial:
//
//	{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{
//	   "Namespace":"Vigil","Dimensions":[["function"]],
//	   "Metrics":[{"Name":"Denials","Unit":"Count"},{"Name":"Denials.open","Unit":"Count"},...]}]},
//	 "function":"orders-api","requestId":"...","Denials":3,"Denials.open":2,"Denials.exec":1,
//	 "timestamp":"...","level":"INFO","message":"vigil denials in this invocation: 3"}
//
// One line carries every op: a dimension has one value per line, so the
// per-op counts are metrics of their own ("Denials.OP"), beside the total
// "Denials", all with the dimension function (AWS_LAMBDA_FUNCTION_NAME;
// no dimension when it is unset). requestId, timestamp, level and message
// are plain members (EMF ignores them; CloudWatch Logs Insights can query
// them), so the line is also a valid Lambda JSON log line.
const (
	emfNamespace   = "Vigil"
	emfTotal       = "Denials"
	emfOpPrefix    = "Denials."
	emfDimFunction = "function"
)

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMeta struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

// emfLine returns the EMF line (no newline) for one invocation's denial
// counts per op, or nil when there were none. level is its "level": INFO,
// or AWS_LAMBDA_LOG_LEVEL where that is higher, so that Lambda's log-level
// filter never drops the metrics.
func emfLine(now time.Time, level, function, requestID string, counts map[string]int64) []byte {
	var total int64
	ops := make([]string, 0, len(counts))
	for op, n := range counts {
		if n > 0 && op != "" {
			ops = append(ops, op)
			total += n
		}
	}
	if total == 0 {
		return nil
	}
	sort.Strings(ops)
	dir := emfDirective{Namespace: emfNamespace, Dimensions: [][]string{{}}}
	doc := map[string]any{}
	if function != "" {
		dir.Dimensions = [][]string{{emfDimFunction}}
		doc[emfDimFunction] = function
	}
	dir.Metrics = append(dir.Metrics, emfMetric{Name: emfTotal, Unit: "Count"})
	doc[emfTotal] = total
	for _, op := range ops {
		dir.Metrics = append(dir.Metrics, emfMetric{Name: emfOpPrefix + op, Unit: "Count"})
		doc[emfOpPrefix+op] = counts[op]
	}
	doc["_aws"] = emfMeta{Timestamp: now.UnixMilli(), CloudWatchMetrics: []emfDirective{dir}}
	if requestID != "" {
		doc["requestId"] = requestID
	}
	doc["timestamp"] = now.UTC().Format("2006-01-02T15:04:05.000Z")
	doc["level"] = level
	doc["message"] = "vigil denials in this invocation: " + strconv.FormatInt(total, 10)
	b, err := json.Marshal(doc)
	if err != nil {
		return nil
	}
	return b
}
