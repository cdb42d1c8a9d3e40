//go:build proofs

// Package proofs holds the link between the Coq model of the ownership
// ledger (proofs/coq) and the Go code: a test that runs the same traces of
// operations through the real hyp/ledger package and through the oracle
// extracted from the model (proofs/build/oracle/oracle), and compares every
// result and every resulting state. The files need the build tag "proofs"
// and the oracle built by `make -C proofs`, which runs them.
package proofs
