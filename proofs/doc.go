//go:build proofs

// Package proofs holds the link between the Coq model of the ownership
// ledger and the stage 2 maps (proofs/coq) and the Go code: a test that
// runs the same traces of operations through the real hyp/ledger package
// and a real hyp.Hyp (Hyp.Donate, Hyp.DestroyVM, the mmu tables walked by
// VM.Translate) and through the oracle extracted from the model
// (proofs/build/oracle/oracle), and compares every result and every
// resulting state, stage 2 translations included. The files need the build
// tag "proofs" and the oracle built by `make -C proofs`, which runs them.
package proofs
