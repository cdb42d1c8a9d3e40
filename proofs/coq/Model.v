(** * Bulkhead: the page ownership ledger and the stage 2 abstraction

    This file is the executable model. It mirrors hyp/ledger/ledger.go
    (Assign, Donate, Share, Unshare, Reclaim, CanAccess, Check) and the parts
    of hyp/vm.go that touch the ledger (Hyp.Donate's IPA checks and stage 2
    mapping; Hyp.DestroyVM's unmapping before Reclaim). The oracle in
    proofs/oracle is extracted from [step], [boot], [check] and
    [can_access]; Proofs.v states and proves the properties.

    Addresses and owners are binary naturals ([N]): unbounded, so the Go
    check [pa+size < pa] (uint64 wrap-around) needs no counterpart: with
    unbounded arithmetic a wrapped sum is simply larger than the end of RAM,
    which the model refuses for the same reason. *)

From Coq Require Import NArith List Bool Lia.
Import ListNotations.

(** ** Owners (compartments) *)

Definition owner := N.
Definition ONone : owner := 0%N.       (** free page, or no borrower *)
Definition OHyp : owner := 1%N.        (** the hypervisor *)
Definition OControl : owner := 2%N.    (** the control partition *)
Definition is_guest (o : owner) : bool := (3 <=? o)%N.

Definition page_size : N := 4096%N.

(** ** State *)

(** One physical page: the ledger's owner and borrower, and the page's
    contents abstracted as the set of compartments whose writes it holds
    since it was last zeroed (the empty list is a zeroed page). [s_zfail] is
    the environment: zeroing this page fails (the Memory seam's error). *)
Record slot := mkslot {
  s_owner : owner;
  s_borrower : owner;
  s_data : list owner;
  s_zfail : bool
}.

(** A stage 2 translation of one page: VM [m_vm] maps IPA page number
    [m_ipa] to physical page index [m_pa] with permissions [m_perm]
    (mmu.Perm bits: 1 read, 2 write, 4 execute). *)
Record mapping := mkmap {
  m_vm : owner;
  m_ipa : N;
  m_pa : nat;
  m_perm : N
}.

Record state := mkstate {
  base : N;          (** physical address of page 0 *)
  ipa_bits : N;      (** size of every VM's IPA space *)
  slots : list slot; (** page i is at base + i * page_size *)
  s2 : list mapping  (** every VM's stage 2 map *)
}.

Definition free_slot : slot := mkslot ONone ONone [] false.

(** Boot: every page free, nothing mapped, nothing written. *)
Definition boot (b : N) (npages : nat) (ib : N) : state :=
  mkstate b ib (repeat free_slot npages) [].

(** ** Results *)

Inductive err :=
| ERange | ENotOwner | EShared | ENotShared | EBadOwner | ENotFree
| EDirtyReturn | EIPARange | EDenied.

Inductive result :=
| ROk
| RErr (e : err)                    (** refused: nothing changed *)
| RReclaim (n : nat) (e : option err) (** pages returned; zeroing failure *)
| RData (d : list owner).             (** what a read saw *)

(** ** Operations *)

Inductive op :=
| Assign (pa size : N) (to : owner)            (** ledger.Assign *)
| Donate (pa size : N) (to : owner)            (** ledger.Donate *)
| DonateMap (pa ipa size : N) (to : owner) (perm : N) (** Hyp.Donate *)
| Share (pa size : N) (g : owner)              (** ledger.Share *)
| Unshare (pa size : N) (g : owner)            (** ledger.Unshare *)
| Reclaim (g : owner)          (** Hyp.DestroyVM: unmap, then ledger.Reclaim *)
| SetFail (pa : N) (b : bool)  (** environment: make zeroing pa fail or not *)
| Write (c : owner) (pa : N)   (** compartment c writes physical page pa *)
| Read (c : owner) (pa : N)    (** compartment c reads physical page pa *)
| GWrite (g : owner) (ipa : N) (** guest g writes through its stage 2 *)
| GRead (g : owner) (ipa : N). (** guest g reads through its stage 2 *)

(** Who performs an operation. Share and Unshare are the owner's
    decision; donation and teardown are the control partition's; the boot
    split is the hypervisor's; [SetFail] is the environment's ([ONone]). *)
Definition actor (o : op) : owner :=
  match o with
  | Assign _ _ _ => OHyp
  | Donate _ _ _ | DonateMap _ _ _ _ _ | Reclaim _ => OControl
  | Share _ _ g | Unshare _ _ g => g
  | SetFail _ _ => ONone
  | Write c _ | Read c _ => c
  | GWrite g _ | GRead g _ => g
  end.

(** ** Helpers over the page list *)

Definition in_range (lo hi i : nat) : bool := Nat.leb lo i && Nat.ltb i hi.

(** Apply [f] to the pages with index in [lo, hi); [i] is the index of the
    head of [l]. *)
Fixpoint upd_from (f : slot -> slot) (lo hi i : nat) (l : list slot) : list slot :=
  match l with
  | [] => []
  | x :: xs => (if in_range lo hi i then f x else x) :: upd_from f lo hi (S i) xs
  end.

(** The first error [ok] reports for a page in [lo, hi), in address order. *)
Fixpoint check_from (ok : slot -> option err) (lo hi i : nat) (l : list slot)
  : option err :=
  match l with
  | [] => None
  | x :: xs =>
      if in_range lo hi i then
        match ok x with
        | Some e => Some e
        | None => check_from ok lo hi (S i) xs
        end
      else check_from ok lo hi (S i) xs
  end.

Definition npages (s : state) : nat := length (slots s).
Definition ram_end (s : state) : N := (base s + N.of_nat (npages s) * page_size)%N.

(** ledger.index: page aligned, non-empty, inside RAM; first page, count. *)
Definition index (s : state) (pa size : N) : option (nat * nat) :=
  if (pa mod page_size =? 0)%N && (size mod page_size =? 0)%N && negb (size =? 0)%N
     && (base s <=? pa)%N && (pa + size <=? ram_end s)%N
  then Some (N.to_nat ((pa - base s) / page_size), N.to_nat (size / page_size))
  else None.

(** ledger.Owner: the page holding byte address pa. *)
Definition page_of (s : state) (pa : N) : option nat :=
  match index s (pa - pa mod page_size) page_size with
  | Some (i, _) => Some i
  | None => None
  end.

Definition with_slots (s : state) (l : list slot) : state :=
  mkstate (base s) (ipa_bits s) l (s2 s).

Definition set_owner (o : owner) (x : slot) : slot :=
  mkslot o (s_borrower x) (s_data x) (s_zfail x).
Definition set_borrower (b : owner) (x : slot) : slot :=
  mkslot (s_owner x) b (s_data x) (s_zfail x).
Definition set_zfail (b : bool) (x : slot) : slot :=
  mkslot (s_owner x) (s_borrower x) (s_data x) b.

(** Insert into a sorted list without duplicates. *)
Fixpoint ins (c : owner) (l : list owner) : list owner :=
  match l with
  | [] => [c]
  | y :: ys => if (c <? y)%N then c :: l else if (c =? y)%N then l else y :: ins c ys
  end.

Definition add_writer (c : owner) (x : slot) : slot :=
  mkslot (s_owner x) (s_borrower x) (ins c (s_data x)) (s_zfail x).

(** Validate the whole range with [ok], then apply [f] to it. *)
Definition ranged (s : state) (pa size : N) (ok : slot -> option err)
  (f : slot -> slot) : state * result :=
  match index s pa size with
  | None => (s, RErr ERange)
  | Some (first, n) =>
      match check_from ok first (first + n) 0 (slots s) with
      | Some e => (s, RErr e)
      | None => (with_slots s (upd_from f first (first + n) 0 (slots s)), ROk)
      end
  end.

(** ** The ledger's transitions *)

Definition ok_free (x : slot) : option err :=
  if (s_owner x =? ONone)%N then None else Some ENotFree.
Definition ok_donatable (x : slot) : option err :=
  if (s_owner x =? OControl)%N then None else Some ENotOwner.
Definition ok_sharable (g : owner) (x : slot) : option err :=
  if negb (s_owner x =? g)%N then Some ENotOwner
  else if negb (s_borrower x =? ONone)%N then Some EShared else None.
Definition ok_unsharable (g : owner) (x : slot) : option err :=
  if negb (s_owner x =? g)%N then Some ENotOwner
  else if (s_borrower x =? ONone)%N then Some ENotShared else None.

Definition assign (s : state) (pa size : N) (to : owner) : state * result :=
  if (to =? OHyp)%N || (to =? OControl)%N
  then ranged s pa size ok_free (set_owner to)
  else (s, RErr EBadOwner).

Definition donate (s : state) (pa size : N) (to : owner) : state * result :=
  if is_guest to then ranged s pa size ok_donatable (set_owner to)
  else (s, RErr EBadOwner).

Definition share (s : state) (pa size : N) (g : owner) : state * result :=
  if is_guest g then ranged s pa size (ok_sharable g) (set_borrower OControl)
  else (s, RErr EBadOwner).

Definition unshare (s : state) (pa size : N) (g : owner) : state * result :=
  if is_guest g then ranged s pa size (ok_unsharable g) (set_borrower ONone)
  else (s, RErr EBadOwner).

Definition reclaimed (x : slot) : slot := mkslot OControl ONone [] (s_zfail x).

(** ledger.Reclaim's loop: pages in address order; a page of [g] is zeroed
    (its contents become empty) and handed to the control partition; the
    first page whose zeroing fails stops the loop and stays with [g]. *)
Fixpoint reclaim_slots (g : owner) (l : list slot) : list slot * nat * bool :=
  match l with
  | [] => ([], O, false)
  | x :: xs =>
      if (s_owner x =? g)%N then
        if s_zfail x then (x :: xs, O, true)
        else let '(ys, n, f) := reclaim_slots g xs in (reclaimed x :: ys, S n, f)
      else let '(ys, n, f) := reclaim_slots g xs in (x :: ys, n, f)
  end.

(** Hyp.DestroyVM: remove the guest's stage 2 map, then ledger.Reclaim. *)
Definition reclaim (s : state) (g : owner) : state * result :=
  if is_guest g then
    let '(l, n, failed) := reclaim_slots g (slots s) in
    (mkstate (base s) (ipa_bits s) l (filter (fun m => negb (m_vm m =? g)%N) (s2 s)),
     RReclaim n (if failed then Some EDirtyReturn else None))
  else (s, RErr EBadOwner).

(** ** Stage 2 *)

(** Hyp.Donate's IPA checks: aligned, non-empty, inside the IPA space, and
    not overlapping a page the VM already maps. *)
Definition ipa_ok (s : state) (ipa size : N) (to : owner) : bool :=
  (ipa mod page_size =? 0)%N && (size mod page_size =? 0)%N && negb (size =? 0)%N
  && (ipa + size <=? 2 ^ ipa_bits s)%N
  && forallb (fun m => negb ((m_vm m =? to)%N && (ipa <=? m_ipa m * page_size)%N
                             && (m_ipa m * page_size <? ipa + size)%N)) (s2 s).

Definition new_maps (to ipn : N) (first n : nat) (perm : N) : list mapping :=
  map (fun k => mkmap to (ipn + N.of_nat k)%N (first + k) perm) (seq 0 n).

(** Hyp.Donate: the IPA checks, then the ledger's donation (its checks and
    the change of owner, as [donate]); when that succeeds, the pages are
    mapped into the VM at consecutive IPAs. Either both happen or neither. *)
Definition donate_map (s : state) (pa ipa size : N) (to : owner) (perm : N)
  : state * result :=
  if negb (ipa_ok s ipa size to) then (s, RErr EIPARange) else
  match donate s pa size to, index s pa size with
  | (s', ROk), Some (first, n) =>
      (mkstate (base s') (ipa_bits s') (slots s')
         (new_maps to (ipa / page_size) first n perm ++ s2 s'), ROk)
  | r, _ => r
  end.

(** The stage 2 walk: the translation of IPA page [ipn] in VM [g]. *)
Definition translate (s : state) (g : owner) (ipn : N) : option mapping :=
  find (fun m => (m_vm m =? g)%N && (m_ipa m =? ipn)%N) (s2 s).

(** ** Access *)

(** ledger.CanAccess on one page. *)
Definition can_access_slot (c : owner) (x : slot) : bool :=
  negb (c =? ONone)%N && negb (c =? OHyp)%N
  && ((s_owner x =? c)%N || (s_borrower x =? c)%N).

(** Compartment [c] may access page index [i]. *)
Definition acc (s : state) (c : owner) (i : nat) : bool :=
  match nth_error (slots s) i with
  | Some x => can_access_slot c x
  | None => false
  end.

(** ledger.CanAccess(c, pa). *)
Definition can_access (s : state) (c : owner) (pa : N) : bool :=
  match page_of s pa with
  | Some i => acc s c i
  | None => false
  end.

Definition upd_at (f : slot -> slot) (i : nat) (l : list slot) : list slot :=
  upd_from f i (S i) 0 l.

Definition write (s : state) (c : owner) (pa : N) : state * result :=
  match page_of s pa with
  | Some i => if acc s c i then (with_slots s (upd_at (add_writer c) i (slots s)), ROk)
              else (s, RErr EDenied)
  | None => (s, RErr EDenied)
  end.

Definition read (s : state) (c : owner) (pa : N) : state * result :=
  match page_of s pa with
  | Some i =>
      match nth_error (slots s) i with
      | Some x => if can_access_slot c x then (s, RData (s_data x)) else (s, RErr EDenied)
      | None => (s, RErr EDenied)
      end
  | None => (s, RErr EDenied)
  end.

Definition perm_read (p : N) : bool := N.testbit p 0.
Definition perm_write (p : N) : bool := N.testbit p 1.

(** A guest's access goes through its stage 2 map only (a stage 2 fault
    otherwise). *)
Definition gwrite (s : state) (g : owner) (ipa : N) : state * result :=
  match translate s g (ipa / page_size) with
  | Some m => if perm_write (m_perm m)
              then (with_slots s (upd_at (add_writer g) (m_pa m) (slots s)), ROk)
              else (s, RErr EDenied)
  | None => (s, RErr EDenied)
  end.

Definition gread (s : state) (g : owner) (ipa : N) : state * result :=
  match translate s g (ipa / page_size) with
  | Some m =>
      if perm_read (m_perm m) then
        match nth_error (slots s) (m_pa m) with
        | Some x => (s, RData (s_data x))
        | None => (s, RErr EDenied)
        end
      else (s, RErr EDenied)
  | None => (s, RErr EDenied)
  end.

Definition set_fail (s : state) (pa : N) (b : bool) : state * result :=
  match page_of s pa with
  | Some i => (with_slots s (upd_at (set_zfail b) i (slots s)), ROk)
  | None => (s, RErr ERange)
  end.

(** ** The transition function *)

Definition step (s : state) (o : op) : state * result :=
  match o with
  | Assign pa size to => assign s pa size to
  | Donate pa size to => donate s pa size to
  | DonateMap pa ipa size to perm => donate_map s pa ipa size to perm
  | Share pa size g => share s pa size g
  | Unshare pa size g => unshare s pa size g
  | Reclaim g => reclaim s g
  | SetFail pa b => set_fail s pa b
  | Write c pa => write s c pa
  | Read c pa => read s c pa
  | GWrite g ipa => gwrite s g ipa
  | GRead g ipa => gread s g ipa
  end.

(** ledger.Check: hypervisor and free pages are never borrowed, only guest
    pages are shared, and only with the control partition. *)
Definition check_slot (x : slot) : bool :=
  (s_borrower x =? ONone)%N || (is_guest (s_owner x) && (s_borrower x =? OControl)%N).
Definition check (s : state) : bool := forallb check_slot (slots s).

(** Running a trace. *)
Fixpoint run (s : state) (ops : list op) : state * list (op * result) :=
  match ops with
  | [] => (s, [])
  | o :: os =>
      let '(s1, r) := step s o in
      let '(s2', rs) := run s1 os in
      (s2', (o, r) :: rs)
  end.
