package ra

import (
	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
)

// storedProblem converts an error into the form kept on orders and
// challenges.
func storedProblem(err error) *store.Problem {
	p := acmeerr.ToProblem(err, "")
	return fromDoc(p)
}

func fromDoc(p acmeerr.Problem) *store.Problem {
	sp := &store.Problem{Type: p.Type, Detail: p.Detail, Status: p.Status}
	if p.Identifier != nil {
		sp.Identifier = &store.Identifier{Type: p.Identifier.Type, Value: p.Identifier.Value}
	}
	for _, s := range p.Subproblems {
		sp.Subproblems = append(sp.Subproblems, *fromDoc(s))
	}
	return sp
}
