(** Extraction of the executable oracle (proofs/oracle/main.ml drives it).
    Only Coq's standard mapping of bool, option, list and pairs to OCaml's
    own types is used (ExtrOcamlBasic); numbers stay Coq's binary [N] and
    unary [nat], so no arithmetic is delegated to OCaml. *)
From Coq Require Import Extraction ExtrOcamlBasic NArith.
From Bulkhead Require Import Model.

Extraction Language OCaml.
Extraction "model.ml" boot step check can_access acc page_of N.add N.mul N.div N.modulo.
