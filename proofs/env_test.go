//go:build proofs

package proofs

import (
	"os"
	"strconv"
)

func seedFromEnv() int64 {
	s, _ := strconv.ParseInt(os.Getenv("PROOFS_SEED"), 10, 64)
	return s
}
