package cowdb_test

import (
	"fmt"
	"strings"
)

// shrink removes operations from a failing sequence while it still fails
// (run returns its failure), halving the chunks it tries to drop, within
// budget runs, and returns the shortest failing sequence found, one
// operation a line, then its failure.
func shrink[T any](ops []T, run func([]T) error, budget int) string {
	err := run(ops)
	runs := 0
	for chunk := len(ops) / 2; chunk >= 1 && runs < budget; chunk /= 2 {
		for i := 0; i+chunk <= len(ops) && runs < budget; {
			try := append(append([]T{}, ops[:i]...), ops[i+chunk:]...)
			runs++
			if e := run(try); e != nil {
				ops, err = try, e
				continue
			}
			i += chunk
		}
	}
	var sb strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&sb, "\t%v\n", op)
	}
	fmt.Fprintf(&sb, "\t=> %v", err)
	return sb.String()
}
