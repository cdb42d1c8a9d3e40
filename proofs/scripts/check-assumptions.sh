#!/usr/bin/env bash
# Fails unless every main theorem is closed under the global context.
#   check-assumptions.sh PROOFS.V ASSUMPTIONS.V OUTPUT
# PROOFS.V: every Theorem/Corollary in it must be printed by ASSUMPTIONS.V;
# OUTPUT: what coqc printed for ASSUMPTIONS.V.
set -euo pipefail
proofs=$1 assumptions=$2 output=$3
fail() { echo "check-assumptions: $*" >&2; exit 1; }

# No admitted proof and no axiom anywhere in the sources.
if grep -nE '\b(Admitted|admit|Axiom|Axioms|Parameter|Parameters|Conjecture|Hypothesis|Hypotheses)\b' \
	"$(dirname "$proofs")"/*.v; then
	fail "the Coq sources admit or assume something (lines above)"
fi

# Every theorem is checked.
for t in $(sed -n 's/^\(Theorem\|Corollary\) \([A-Za-z0-9_]*\).*/\2/p' "$proofs"); do
	grep -qx "Print Assumptions $t." "$assumptions" || fail "$t is missing from $assumptions"
done

want=$(grep -c '^Print Assumptions ' "$assumptions")
closed=$(grep -cx 'Closed under the global context' "$output" || true)
if grep -qiE 'axiom|admit|parameter' "$output"; then
	cat "$output" >&2
	fail "a theorem depends on an axiom (output above)"
fi
[ "$closed" -eq "$want" ] || { cat "$output" >&2; fail "$closed of $want theorems closed under the global context"; }
echo "check-assumptions: all $want main theorems are closed under the global context (no axioms, nothing admitted)"
