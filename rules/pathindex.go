package rules

// pathIndex finds the rules whose patterns match a path, testing only
// candidates: patterns are stored in a trie under their leading literal
// segments, so a query walks the trie along the path's segments and runs
// the glob matcher only on the patterns whose literal part it has reached.

type pathRef struct {
	id   int32
	kind listKind
}

type restRef struct {
	pathRef
	segs []seg // the pattern after its literal prefix (starts with a non-literal)
	all  bool  // segs is just "**": everything from here down matches
}

type pnode struct {
	kids  map[string]*pnode
	exact []pathRef // fully literal patterns that end here
	rest  []restRef // patterns whose first non-literal segment comes next
}

type pathIndex struct {
	root pnode
}

func (ix *pathIndex) add(p *pathPattern, id int32, kind listKind) {
	n := &ix.root
	for _, s := range p.segs[:p.nlit] {
		kid := n.kids[s.lit]
		if kid == nil {
			if n.kids == nil {
				n.kids = map[string]*pnode{}
			}
			kid = &pnode{}
			n.kids[s.lit] = kid
		}
		n = kid
	}
	ref := pathRef{id, kind}
	if p.nlit == len(p.segs) {
		n.exact = append(n.exact, ref)
		return
	}
	rest := p.segs[p.nlit:]
	n.rest = append(n.rest, restRef{ref, rest, len(rest) == 1 && rest[0].kind == segAny})
}

// hits holds, per list kind, the lowest matching rule id (-1: none).
type hits [nKinds]int32

func (h *hits) add(r pathRef) {
	if cur := h[r.kind]; cur < 0 || r.id < cur {
		h[r.kind] = r.id
	}
}

// lookup matches a clean absolute path (already /proc-canonicalized).
func (ix *pathIndex) lookup(path string, tid int) hits {
	h := hits{-1, -1, -1, -1, -1, -1}
	rest := path
	if path == "/" {
		rest = ""
	}
	n := &ix.root
	for {
		for i := range n.rest {
			r := &n.rest[i]
			if r.all || matchRest(r.segs, rest, tid) {
				h.add(r.pathRef)
			}
		}
		if rest == "" {
			for _, r := range n.exact {
				h.add(r)
			}
			return h
		}
		end := nextSeg(rest, 0)
		kid := n.kids[rest[1:end]]
		if kid == nil {
			return h
		}
		n = kid
		rest = rest[end:]
	}
}
