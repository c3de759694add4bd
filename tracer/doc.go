package tracer
