(** * Bulkhead: what the model guarantees

    Every theorem here is about [step] in Model.v, the function the oracle
    is extracted from. README.md lists the theorems with their meaning. *)

From Coq Require Import NArith ZArith List Bool Lia.
From Bulkhead Require Import Model.
Import ListNotations.

(** ** The invariant *)

(** ledger.Check, as a proposition: a borrowed page belongs to a guest and
    is lent to the control partition. *)
Definition ledger_ok (x : slot) : Prop :=
  s_borrower x <> ONone -> is_guest (s_owner x) = true /\ s_borrower x = OControl.

(** A page holds data of guest g only while g owns it. *)
Definition data_ok (x : slot) : Prop :=
  forall g, In g (s_data x) -> is_guest g = true -> s_owner x = g.

Definition slot_ok (x : slot) : Prop := ledger_ok x /\ data_ok x.

(** Stage 2 maps are derived from the ledger: only guests have them, and a
    guest maps only pages it owns. *)
Definition maps_ok (s : state) : Prop :=
  forall m, In m (s2 s) ->
    is_guest (m_vm m) = true /\
    exists x, nth_error (slots s) (m_pa m) = Some x /\ s_owner x = m_vm m.

(** Each VM's map is a function of the IPA. *)
Definition maps_fun (s : state) : Prop :=
  forall m1 m2, In m1 (s2 s) -> In m2 (s2 s) ->
    m_vm m1 = m_vm m2 -> m_ipa m1 = m_ipa m2 -> m1 = m2.

Definition inv (s : state) : Prop :=
  (forall i x, nth_error (slots s) i = Some x -> slot_ok x) /\ maps_ok s /\ maps_fun s.

Inductive reachable : state -> Prop :=
| reach_boot : forall b n ib, reachable (boot b n ib)
| reach_step : forall s o s' r, reachable s -> step s o = (s', r) -> reachable s'.

(** ** Generic facts *)

Lemma nth_error_upd_from : forall f lo hi l i k,
  nth_error (upd_from f lo hi i l) k =
  option_map (fun x => if in_range lo hi (i + k) then f x else x) (nth_error l k).
Proof.
  induction l as [|x xs IH]; intros i k; simpl.
  - destruct k; reflexivity.
  - destruct k as [|k]; simpl.
    + rewrite Nat.add_0_r. reflexivity.
    + rewrite IH. replace (S i + k)%nat with (i + S k)%nat by lia. reflexivity.
Qed.

Lemma length_upd_from : forall f lo hi l i, length (upd_from f lo hi i l) = length l.
Proof. induction l; simpl; auto. Qed.

Lemma check_from_none : forall ok lo hi l i,
  check_from ok lo hi i l = None ->
  forall k x, nth_error l k = Some x -> in_range lo hi (i + k) = true -> ok x = None.
Proof.
  induction l as [|y ys IH]; intros i H k x Hk Hr; [destruct k; discriminate|].
  simpl in H. destruct k as [|k]; simpl in Hk.
  - injection Hk as <-. rewrite Nat.add_0_r in Hr. rewrite Hr in H.
    destruct (ok y); [discriminate | reflexivity].
  - replace (i + S k)%nat with (S i + k)%nat in Hr by lia.
    destruct (in_range lo hi i); [destruct (ok y); [discriminate|]|];
      eapply IH; eauto.
Qed.

Lemma in_range_spec : forall lo hi i, in_range lo hi i = true <-> (lo <= i < hi)%nat.
Proof.
  intros. unfold in_range. rewrite andb_true_iff, Nat.leb_le, Nat.ltb_lt. tauto.
Qed.

(** The pages a ranged call changes: those in the range, each of which
    passed [ok]. *)
Lemma ranged_spec : forall s pa size ok f s' r,
  ranged s pa size ok f = (s', r) ->
  base s' = base s /\ ipa_bits s' = ipa_bits s /\ s2 s' = s2 s /\
  length (slots s') = length (slots s) /\
  forall i x', nth_error (slots s') i = Some x' ->
    exists x, nth_error (slots s) i = Some x /\ (x' = x \/ (ok x = None /\ x' = f x)).
Proof.
  unfold ranged. intros s pa size ok f s' r H.
  destruct (index s pa size) as [[first n]|];
    [destruct (check_from ok first (first + n) 0 (slots s)) eqn:C|].
  - injection H as <- <-. repeat split; auto. intros i x' Hx. exists x'; auto.
  - injection H as <- <-. simpl. repeat split; auto using length_upd_from.
    intros i x' Hx. rewrite nth_error_upd_from in Hx.
    destruct (nth_error (slots s) i) as [x|] eqn:E; [|discriminate].
    simpl in Hx. injection Hx as <-. exists x. split; [reflexivity|].
    destruct (in_range first (first + n) i) eqn:R; [right|left; reflexivity].
    split; [eapply check_from_none; eauto | reflexivity].
  - injection H as <- <-. repeat split; auto. intros i x' Hx. exists x'; auto.
Qed.

Lemma upd_at_spec : forall f i l k x',
  nth_error (upd_at f i l) k = Some x' ->
  exists x, nth_error l k = Some x /\ (x' = x \/ (k = i /\ x' = f x)).
Proof.
  unfold upd_at. intros f i l k x' H. rewrite nth_error_upd_from in H.
  destruct (nth_error l k) as [x|]; [|discriminate]. simpl in H.
  injection H as <-. exists x. split; [reflexivity|].
  destruct (in_range i (S i) k) eqn:R; [right|left; reflexivity].
  apply in_range_spec in R. split; [lia|reflexivity].
Qed.

Lemma length_upd_at : forall f i l, length (upd_at f i l) = length l.
Proof. intros. apply length_upd_from. Qed.

Lemma nth_error_upd_at_same : forall f i l x,
  nth_error l i = Some x -> nth_error (upd_at f i l) i = Some (f x).
Proof.
  intros. unfold upd_at. rewrite nth_error_upd_from, H. simpl.
  replace (in_range i (S i) i) with true; [reflexivity|].
  symmetry. apply in_range_spec. lia.
Qed.

(** Reclaim's loop: every page is unchanged, or was the guest's, zeroed
    successfully, and handed to the control partition. *)
Lemma reclaim_slots_spec : forall g l l' n f,
  reclaim_slots g l = (l', n, f) ->
  length l' = length l /\
  forall i x', nth_error l' i = Some x' ->
    exists x, nth_error l i = Some x /\
      (x' = x \/ (s_owner x = g /\ s_zfail x = false /\ x' = reclaimed x)).
Proof.
  induction l as [|x xs IH]; simpl; intros l' n f H.
  - injection H as <- <- <-. split; [reflexivity|]. intros [|i]; discriminate.
  - destruct (s_owner x =? g)%N eqn:O.
    + destruct (s_zfail x) eqn:Z.
      * injection H as <- <- <-. split; [reflexivity|]. intros i x' Hx. exists x'. auto.
      * destruct (reclaim_slots g xs) as [[ys m] f'] eqn:R.
        injection H as <- <- <-. destruct (IH _ _ _ eq_refl) as [L IH'].
        split; [simpl; congruence|]. intros [|i] x' Hx; simpl in Hx.
        -- injection Hx as <-. exists x. split; [reflexivity|].
           right. apply N.eqb_eq in O. auto.
        -- apply IH'. exact Hx.
    + destruct (reclaim_slots g xs) as [[ys m] f'] eqn:R.
      injection H as <- <- <-. destruct (IH _ _ _ eq_refl) as [L IH'].
      split; [simpl; congruence|]. intros [|i] x' Hx; simpl in Hx.
      * injection Hx as <-. exists x. auto.
      * apply IH'. exact Hx.
Qed.

(** The page whose zeroing fails is left exactly as it was. *)
Lemma reclaim_slots_dirty : forall g l l' n f i x,
  reclaim_slots g l = (l', n, f) ->
  nth_error l i = Some x -> s_owner x = g -> s_zfail x = true ->
  nth_error l' i = Some x.
Proof.
  induction l as [|y ys IH]; simpl; intros l' n f i x H Hx Ho Hz;
    [destruct i; discriminate|].
  destruct (s_owner y =? g)%N eqn:O.
  - destruct (s_zfail y) eqn:Z.
    + injection H as <- <- <-. exact Hx.
    + destruct (reclaim_slots g ys) as [[zs m] f'] eqn:R.
      injection H as <- <- <-. destruct i as [|i]; simpl in *.
      * injection Hx as ->. congruence.
      * eapply IH; eauto.
  - destruct (reclaim_slots g ys) as [[zs m] f'] eqn:R.
    injection H as <- <- <-. destruct i as [|i]; simpl in *.
    + injection Hx as ->. apply N.eqb_neq in O. congruence.
    + eapply IH; eauto.
Qed.

(** Without a zeroing failure, the guest owns nothing afterwards. *)
Lemma reclaim_slots_complete : forall g l l' n,
  g <> OControl -> reclaim_slots g l = (l', n, false) ->
  forall x', In x' l' -> s_owner x' <> g.
Proof.
  induction l as [|y ys IH]; simpl; intros l' n Hg H x' Hin.
  - injection H as <- <-. destruct Hin.
  - destruct (s_owner y =? g)%N eqn:O.
    + destruct (s_zfail y) eqn:Z; [discriminate|].
      destruct (reclaim_slots g ys) as [[zs m] f'] eqn:R.
      injection H as <- <- ->. destruct Hin as [<-|Hin]; [simpl; congruence|].
      eapply IH; eauto.
    + destruct (reclaim_slots g ys) as [[zs m] f'] eqn:R.
      injection H as <- <- ->. destruct Hin as [<-|Hin].
      * apply N.eqb_neq in O. exact O.
      * eapply IH; eauto.
Qed.

(** ** Arithmetic of ranges *)

Lemma index_spec : forall s pa size first n,
  index s pa size = Some (first, n) ->
  (first + n <= length (slots s))%nat /\ (0 < n)%nat.
Proof.
  unfold index, ram_end, npages, page_size. intros s pa size first n H.
  destruct ((pa mod 4096 =? 0)%N && (size mod 4096 =? 0)%N && negb (size =? 0)%N
            && (base s <=? pa)%N && (pa + size <=? base s + N.of_nat (length (slots s)) * 4096)%N) eqn:C;
    [|discriminate].
  injection H as <- <-.
  repeat rewrite andb_true_iff in C. rewrite negb_true_iff in C.
  destruct C as [[[[A B] Z] L] E].
  apply N.eqb_eq in A, B. apply N.eqb_neq in Z. apply N.leb_le in L, E.
  split; zify; Z.to_euclidean_division_equations; nia.
Qed.

Lemma index_n : forall s pa size first n,
  index s pa size = Some (first, n) ->
  n = N.to_nat (size / page_size) /\ (size mod page_size = 0)%N.
Proof.
  unfold index. intros s pa size first n H.
  destruct ((pa mod page_size =? 0)%N && (size mod page_size =? 0)%N && negb (size =? 0)%N
            && (base s <=? pa)%N && (pa + size <=? ram_end s)%N) eqn:C; [|discriminate].
  injection H as <- <-. split; [reflexivity|].
  repeat rewrite andb_true_iff in C. destruct C as [[[[_ B] _] _] _].
  apply N.eqb_eq in B. exact B.
Qed.

(** ** What a step may change *)

Lemma ok_free_none : forall x, ok_free x = None -> s_owner x = ONone.
Proof. unfold ok_free. intros x. destruct (N.eqb_spec (s_owner x) ONone); congruence. Qed.

Lemma ok_donatable_none : forall x, ok_donatable x = None -> s_owner x = OControl.
Proof. unfold ok_donatable. intros x. destruct (N.eqb_spec (s_owner x) OControl); congruence. Qed.

Lemma ok_sharable_none : forall g x, ok_sharable g x = None ->
  s_owner x = g /\ s_borrower x = ONone.
Proof.
  unfold ok_sharable. intros g x.
  destruct (N.eqb_spec (s_owner x) g), (N.eqb_spec (s_borrower x) ONone); simpl; auto;
    discriminate.
Qed.

Lemma ok_unsharable_none : forall g x, ok_unsharable g x = None ->
  s_owner x = g /\ s_borrower x <> ONone.
Proof.
  unfold ok_unsharable. intros g x.
  destruct (N.eqb_spec (s_owner x) g), (N.eqb_spec (s_borrower x) ONone); simpl; auto;
    discriminate.
Qed.

Lemma translate_some : forall s g ipn m,
  translate s g ipn = Some m -> In m (s2 s) /\ m_vm m = g /\ m_ipa m = ipn.
Proof.
  unfold translate. intros s g ipn m H. apply find_some in H as [Hin Hm].
  apply andb_true_iff in Hm as [A B]. apply N.eqb_eq in A, B. auto.
Qed.

Lemma acc_slot : forall s c i x,
  nth_error (slots s) i = Some x -> acc s c i = can_access_slot c x.
Proof. unfold acc. intros s c i x ->. reflexivity. Qed.

Lemma can_access_slot_spec : forall c x,
  can_access_slot c x = true <->
  c <> ONone /\ c <> OHyp /\ (s_owner x = c \/ s_borrower x = c).
Proof.
  unfold can_access_slot. intros c x.
  repeat rewrite andb_true_iff. rewrite orb_true_iff, !negb_true_iff, !N.eqb_eq, !N.eqb_neq.
  tauto.
Qed.

(** How one page may change in a step, by operation. *)
Definition changed (s : state) (o : op) (i : nat) (x x' : slot) : Prop :=
  match o with
  | Assign _ _ to => (to = OHyp \/ to = OControl) /\ s_owner x = ONone /\ x' = set_owner to x
  | Donate _ _ to | DonateMap _ _ _ to _ =>
      is_guest to = true /\ s_owner x = OControl /\ x' = set_owner to x
  | Share _ _ g =>
      is_guest g = true /\ s_owner x = g /\ s_borrower x = ONone /\ x' = set_borrower OControl x
  | Unshare _ _ g =>
      is_guest g = true /\ s_owner x = g /\ s_borrower x <> ONone /\ x' = set_borrower ONone x
  | Reclaim g => is_guest g = true /\ s_owner x = g /\ s_zfail x = false /\ x' = reclaimed x
  | SetFail _ b => x' = set_zfail b x
  | Write c _ => can_access_slot c x = true /\ x' = add_writer c x
  | GWrite g _ => (exists m, In m (s2 s) /\ m_vm m = g /\ m_pa m = i) /\ x' = add_writer g x
  | Read _ _ | GRead _ _ => False
  end.

Definition frame (s s' : state) (P : nat -> slot -> slot -> Prop) : Prop :=
  base s' = base s /\ ipa_bits s' = ipa_bits s /\ length (slots s') = length (slots s) /\
  forall i x', nth_error (slots s') i = Some x' ->
    exists x, nth_error (slots s) i = Some x /\ (x' = x \/ P i x x').

Lemma frame_same : forall s P, frame s s P.
Proof. intros s P. repeat split; auto. intros i x' H. exists x'. auto. Qed.

Lemma frame_weaken : forall s s' (P Q : nat -> slot -> slot -> Prop),
  (forall i x x', nth_error (slots s) i = Some x -> P i x x' -> Q i x x') ->
  frame s s' P -> frame s s' Q.
Proof.
  intros s s' P Q W (B & I & L & F). repeat split; auto.
  intros i x' H. destruct (F i x' H) as (x & Hx & [E|E]); exists x; split; auto.
Qed.

Lemma ranged_frame : forall s pa size ok f s' r,
  ranged s pa size ok f = (s', r) ->
  frame s s' (fun _ x x' => ok x = None /\ x' = f x).
Proof.
  intros. destruct (ranged_spec _ _ _ _ _ _ _ H) as (B & I & S & L & F).
  repeat split; auto.
Qed.

Lemma ranged_s2 : forall s pa size ok f s' r,
  ranged s pa size ok f = (s', r) -> s2 s' = s2 s.
Proof. intros. apply (ranged_spec _ _ _ _ _ _ _ H). Qed.

Lemma donate_frame : forall s pa size to s' r,
  donate s pa size to = (s', r) ->
  frame s s' (fun i x x' => is_guest to = true /\ s_owner x = OControl /\ x' = set_owner to x)
  /\ s2 s' = s2 s.
Proof.
  unfold donate. intros s pa size to s' r H. destruct (is_guest to) eqn:G.
  - split; [|eapply ranged_s2; eauto].
    eapply frame_weaken; [|eapply ranged_frame; eauto].
    simpl. intros i x x' _ [O E]. auto using ok_donatable_none.
  - injection H as <- <-. split; [apply frame_same | reflexivity].
Qed.

Lemma upd_at_frame : forall s f j,
  frame s (with_slots s (upd_at f j (slots s))) (fun i x x' => i = j /\ x' = f x).
Proof.
  intros. repeat split; simpl; auto using length_upd_at.
  intros i x' H. apply upd_at_spec in H as (x & Hx & [E|[E1 E2]]); exists x; auto.
Qed.

Lemma step_frame : forall s o s' r,
  step s o = (s', r) -> frame s s' (changed s o).
Proof.
  intros s o s' r H. destruct o; simpl in H.
  - (* Assign *)
    unfold assign in H. destruct (N.eqb_spec to OHyp), (N.eqb_spec to OControl); simpl in H;
      try (injection H as <- <-; apply frame_same);
      (eapply frame_weaken; [|eapply ranged_frame; eauto]);
      simpl; intros i x x' _ [O E]; auto using ok_free_none.
  - (* Donate *) apply (donate_frame _ _ _ _ _ _ H).
  - (* DonateMap *)
    unfold donate_map in H. destruct (ipa_ok s ipa size to); simpl in H;
      [|injection H as <- <-; apply frame_same].
    destruct (donate s pa size to) as [s1 r1] eqn:D.
    destruct (donate_frame _ _ _ _ _ _ D) as [F _].
    destruct r1 as [| e | cnt e | d]; destruct (index s pa size) as [[first n]|];
      try (injection H as <- <-; exact F).
  - (* Share *)
    unfold share in H. destruct (is_guest g) eqn:G;
      [|injection H as <- <-; apply frame_same].
    eapply frame_weaken; [|eapply ranged_frame; eauto].
    simpl. intros i x x' _ [O E]. apply ok_sharable_none in O as [O1 O2]. auto.
  - (* Unshare *)
    unfold unshare in H. destruct (is_guest g) eqn:G;
      [|injection H as <- <-; apply frame_same].
    eapply frame_weaken; [|eapply ranged_frame; eauto].
    simpl. intros i x x' _ [O E]. apply ok_unsharable_none in O as [O1 O2]. auto.
  - (* Reclaim *)
    unfold reclaim in H. destruct (is_guest g) eqn:G;
      [|injection H as <- <-; apply frame_same].
    destruct (reclaim_slots g (slots s)) as [[l cnt] fl] eqn:R.
    injection H as <- <-. destruct (reclaim_slots_spec _ _ _ _ _ R) as [L F].
    repeat split; simpl; auto.
    intros i x' Hx. destruct (F i x' Hx) as (x & Hx0 & [E|E]); exists x; simpl; intuition.
  - (* SetFail *)
    unfold set_fail in H. destruct (page_of s pa) as [j|];
      injection H as <- <-; [|apply frame_same].
    eapply frame_weaken; [|apply upd_at_frame]. simpl. intros i x x' _ [_ E]. exact E.
  - (* Write *)
    unfold write in H. destruct (page_of s pa) as [j|];
      [destruct (acc s c j) eqn:A|]; injection H as <- <-; try apply frame_same.
    eapply frame_weaken; [|apply upd_at_frame]. simpl. intros i x x' Hx [-> E].
    rewrite (acc_slot _ _ _ _ Hx) in A. auto.
  - (* Read *)
    unfold read in H. destruct (page_of s pa) as [j|];
      [destruct (nth_error (slots s) j); [destruct (can_access_slot c s0)|]|];
      injection H as <- <-; apply frame_same.
  - (* GWrite *)
    unfold gwrite in H. destruct (translate s g (ipa / page_size)) as [m|] eqn:T;
      [destruct (perm_write (m_perm m))|]; injection H as <- <-; try apply frame_same.
    eapply frame_weaken; [|apply upd_at_frame]. simpl. intros i x x' Hx [-> E].
    apply translate_some in T as (T1 & T2 & _). eauto.
  - (* GRead *)
    unfold gread in H. destruct (translate s g (ipa / page_size)) as [m|];
      [destruct (perm_read (m_perm m)); [destruct (nth_error (slots s) (m_pa m))|]|];
      injection H as <- <-; apply frame_same.
Qed.

Lemma ranged_in : forall s pa size ok f s' first n i x,
  ranged s pa size ok f = (s', ROk) -> index s pa size = Some (first, n) ->
  (first <= i < first + n)%nat -> nth_error (slots s) i = Some x ->
  nth_error (slots s') i = Some (f x) /\ ok x = None.
Proof.
  unfold ranged. intros s pa size ok f s' first n i x H I R Hx. rewrite I in H.
  destruct (check_from ok first (first + n) 0 (slots s)) eqn:C; [discriminate|].
  injection H as <-. simpl. rewrite nth_error_upd_from, Hx. simpl.
  apply in_range_spec in R. rewrite R. split; [reflexivity|].
  eapply check_from_none; eauto.
Qed.

Lemma in_new_maps : forall to ipn first n perm m,
  In m (new_maps to ipn first n perm) <->
  exists k, (k < n)%nat /\ m = mkmap to (ipn + N.of_nat k) (first + k) perm.
Proof.
  unfold new_maps. intros. rewrite in_map_iff. split.
  - intros (k & <- & Hk). apply in_seq in Hk. exists k. split; [lia|reflexivity].
  - intros (k & Hk & ->). exists k. split; [reflexivity|]. apply in_seq. lia.
Qed.

Lemma in_ins : forall a c l, In a (ins c l) <-> a = c \/ In a l.
Proof.
  induction l as [|y ys IH]; simpl; [intuition congruence|].
  destruct (c <? y)%N; [simpl; intuition congruence|].
  destruct (N.eqb_spec c y); simpl; [subst; intuition congruence|].
  rewrite IH. intuition congruence.
Qed.

Lemma guest_none : is_guest ONone = false. Proof. reflexivity. Qed.
Lemma guest_hyp : is_guest OHyp = false. Proof. reflexivity. Qed.
Lemma guest_control : is_guest OControl = false. Proof. reflexivity. Qed.

(** The ways stage 2 maps change: Hyp.Donate adds the donated pages, and
    Hyp.DestroyVM removes all of the guest's. *)
Lemma step_s2 : forall s o s' r, step s o = (s', r) ->
  (forall m, In m (s2 s') -> In m (s2 s) \/
     exists pa ipa size to perm first n,
       o = DonateMap pa ipa size to perm /\ ipa_ok s ipa size to = true /\
       is_guest to = true /\ index s pa size = Some (first, n) /\
       donate s pa size to = (with_slots s (slots s'), ROk) /\
       In m (new_maps to (ipa / page_size) first n perm)) /\
  (forall m, In m (s2 s) -> In m (s2 s') \/ (exists g, o = Reclaim g /\ m_vm m = g)) /\
  (forall g m, o = Reclaim g -> is_guest g = true -> In m (s2 s') -> m_vm m <> g).
Proof.
  intros s o s' r H.
  destruct o; simpl in H;
  (* the operations that leave stage 2 alone *)
  try (assert (E : s2 s' = s2 s) by
         (unfold assign, donate, share, unshare, set_fail, write, read, gwrite, gread in H;
          repeat match type of H with context [match ?x with _ => _ end] => destruct x end;
          first [injection H as <- <-; reflexivity | eapply ranged_s2; eauto]);
       rewrite E; split; [intros m Hm; left; exact Hm|
                          split; [intros m Hm; left; exact Hm|intros; discriminate]]).
  - (* DonateMap *)
    unfold donate_map in H. destruct (ipa_ok s ipa size to) eqn:IO; simpl in H;
      [|injection H as <- <-; split; [intros m Hm; left; exact Hm|
                                       split; [intros m Hm; left; exact Hm|intros; discriminate]]].
    destruct (donate s pa size to) as [s1 r1] eqn:D.
    destruct (donate_frame _ _ _ _ _ _ D) as [F S1].
    destruct r1 as [| e | cnt e | d]; destruct (index s pa size) as [[first n]|] eqn:I;
      try (injection H as <- <-; rewrite S1;
           split; [intros m Hm; left; exact Hm|
                   split; [intros m Hm; left; exact Hm|intros; discriminate]]).
    injection H as <- <-. simpl. split; [|split; [|intros; discriminate]].
    + intros m Hm. apply in_app_or in Hm as [Hm|Hm]; [|rewrite S1 in Hm; auto].
      right. exists pa, ipa, size, to, perm, first, n.
      assert (G : is_guest to = true) by
        (unfold donate in D; destruct (is_guest to); [reflexivity|discriminate]).
      repeat split; auto.
      destruct F as (B & Ib & _). rewrite D.
      destruct s1; unfold with_slots; simpl in *; subst; reflexivity.
    + intros m Hm. left. apply in_or_app. right. rewrite S1. exact Hm.
  - (* Reclaim *)
    unfold reclaim in H. destruct (is_guest g) eqn:G;
      [|injection H as <- <-; split; [intros m Hm; left; exact Hm|
                                       split; [intros m Hm; left; exact Hm|
                                               intros g' m E; injection E as <-; congruence]]].
    destruct (reclaim_slots g (slots s)) as [[l cnt] fl].
    injection H as <- <-. simpl. split; [|split].
    + intros m Hm. apply filter_In in Hm. tauto.
    + intros m Hm. destruct (N.eqb_spec (m_vm m) g); [right; eauto|left].
      apply filter_In. split; [exact Hm|]. apply negb_true_iff, N.eqb_neq. exact n.
    + intros g' m E _ Hm. injection E as <-. apply filter_In in Hm as [_ Hm].
      apply negb_true_iff, N.eqb_neq in Hm. exact Hm.
Qed.

Lemma ipa_ok_spec : forall s ipa size to,
  ipa_ok s ipa size to = true ->
  (ipa mod page_size = 0)%N /\
  forall m, In m (s2 s) -> m_vm m = to ->
    ~ (ipa <= m_ipa m * page_size < ipa + size)%N.
Proof.
  unfold ipa_ok. intros s ipa size to H.
  repeat rewrite andb_true_iff in H. destruct H as [[[[A _] _] _] F].
  apply N.eqb_eq in A. split; [exact A|].
  intros m Hm Hv [L R]. rewrite forallb_forall in F. specialize (F m Hm).
  apply N.leb_le in L. apply N.ltb_lt in R. apply N.eqb_eq in Hv.
  rewrite Hv, L, R in F. discriminate.
Qed.

Lemma new_ipa_in_range : forall ipa size k,
  (ipa mod page_size = 0)%N -> (k < N.to_nat (size / page_size))%nat ->
  (ipa <= (ipa / page_size + N.of_nat k) * page_size < ipa + size)%N.
Proof.
  unfold page_size. intros. zify. Z.to_euclidean_division_equations. nia.
Qed.

Lemma donate_ok_in : forall s pa size to s' first n i x,
  donate s pa size to = (s', ROk) -> index s pa size = Some (first, n) ->
  (first <= i < first + n)%nat -> nth_error (slots s) i = Some x ->
  nth_error (slots s') i = Some (set_owner to x) /\ s_owner x = OControl.
Proof.
  unfold donate. intros s pa size to s' first n i x H I R Hx.
  destruct (is_guest to); [|discriminate].
  destruct (ranged_in _ _ _ _ _ _ _ _ _ _ H I R Hx) as [A B].
  split; [exact A | apply ok_donatable_none; exact B].
Qed.

Lemma nth_error_some_length : forall {A} (l1 : list A) {B} (l2 : list B) i x,
  length l2 = length l1 -> nth_error l1 i = Some x -> exists y, nth_error l2 i = Some y.
Proof.
  intros A l1 B l2 i x L H.
  destruct (nth_error l2 i) as [y|] eqn:E; [eauto|].
  apply nth_error_None in E. assert (nth_error l1 i <> None) by congruence.
  apply nth_error_Some in H0. lia.
Qed.

(** ** Theorem 1: the invariant holds in every reachable state *)

Lemma slot_ok_step : forall s o s' r i x',
  inv s -> step s o = (s', r) -> nth_error (slots s') i = Some x' -> slot_ok x'.
Proof.
  intros s o s' r i x' (Hs & Hm & Hf) H Hx'.
  destruct (step_frame _ _ _ _ H) as (_ & _ & _ & F).
  destruct (F _ _ Hx') as (x & Hx & [->|C]); [eauto|].
  destruct (Hs _ _ Hx) as [Lx Dx]. unfold slot_ok, ledger_ok, data_ok in *.
  destruct o; simpl in C.
  - destruct C as (_ & O & ->). simpl. split.
    + intros Hb. destruct (Lx Hb) as [G _]. rewrite O in G. discriminate.
    + intros g Hg Gg. specialize (Dx g Hg Gg). subst g. rewrite O in Gg. discriminate.
  - destruct C as (_ & O & ->). simpl. split.
    + intros Hb. destruct (Lx Hb) as [G _]. rewrite O in G. discriminate.
    + intros g Hg Gg. specialize (Dx g Hg Gg). subst g. rewrite O in Gg. discriminate.
  - destruct C as (_ & O & ->). simpl. split.
    + intros Hb. destruct (Lx Hb) as [G _]. rewrite O in G. discriminate.
    + intros g Hg Gg. specialize (Dx g Hg Gg). subst g. rewrite O in Gg. discriminate.
  - destruct C as (G & O & _ & ->). simpl. split; [|exact Dx].
    intros _. rewrite O. auto.
  - destruct C as (G & O & _ & ->). simpl. split; [|exact Dx]. intros Hb. contradiction.
  - destruct C as (_ & _ & _ & ->). simpl. split; [intros Hb; contradiction|].
    intros g0 [].
  - subst x'. simpl. auto.
  - destruct C as (A & ->). simpl. split; [exact Lx|].
    intros g Hg Gg. apply in_ins in Hg as [->|Hg]; [|auto].
    unfold can_access_slot in A. repeat rewrite andb_true_iff in A.
    destruct A as [[A1 A2] A3]. apply orb_true_iff in A3 as [A3|A3]; apply N.eqb_eq in A3;
      [exact A3|].
    destruct Lx as [_ Lb]; [rewrite A3; intros E; rewrite E in Gg; discriminate|].
    rewrite A3 in Lb. rewrite Lb in Gg. discriminate.
  - contradiction.
  - destruct C as ((m & Min & Mv & Mp) & ->). simpl. split; [exact Lx|].
    destruct (Hm m Min) as (_ & y & Hy & Oy). rewrite Mp, Hx in Hy. injection Hy as <-.
    intros g' Hg Gg. apply in_ins in Hg as [->|Hg]; [congruence|auto].
  - contradiction.
Qed.

Lemma maps_ok_step : forall s o s' r,
  inv s -> step s o = (s', r) -> maps_ok s'.
Proof.
  intros s o s' r (Hs & Hm & Hf) H m Hin.
  destruct (step_frame _ _ _ _ H) as (_ & _ & L & F).
  destruct (step_s2 _ _ _ _ H) as (N1 & _ & N3).
  destruct (N1 m Hin) as [Old | (pa & ipa & size & to & perm & first & n & E & IO & G & I & D & Nm)].
  - destruct (Hm m Old) as (Gm & x & Hx & Ox). split; [exact Gm|].
    destruct (nth_error_some_length _ _ _ _ L Hx) as [x' Hx'].
    exists x'. split; [exact Hx'|].
    destruct (F _ _ Hx') as (y & Hy & [->|C]); rewrite Hx in Hy; injection Hy as <-;
      [exact Ox|].
    destruct o; simpl in C.
    + destruct C as (_ & O & _). rewrite O in Ox. rewrite <- Ox in Gm. discriminate.
    + destruct C as (_ & O & _). rewrite O in Ox. rewrite <- Ox in Gm. discriminate.
    + destruct C as (_ & O & _). rewrite O in Ox. rewrite <- Ox in Gm. discriminate.
    + destruct C as (_ & _ & _ & ->). exact Ox.
    + destruct C as (_ & _ & _ & ->). exact Ox.
    + destruct C as (G & O & _ & ->). exfalso. eapply (N3 g m); eauto. congruence.
    + subst x'. exact Ox.
    + destruct C as (_ & ->). exact Ox.
    + contradiction.
    + destruct C as (_ & ->). exact Ox.
    + contradiction.
  - apply in_new_maps in Nm as (k & Hk & ->). simpl. split; [exact G|].
    destruct (index_spec _ _ _ _ _ I) as [Len _].
    destruct (nth_error (slots s) (first + k)) as [x|] eqn:Hx;
      [|apply nth_error_None in Hx; lia].
    assert (R : (first <= first + k < first + n)%nat) by lia.
    destruct (donate_ok_in _ _ _ _ _ _ _ _ _ D I R Hx) as [A _].
    exists (set_owner to x). split; [exact A|reflexivity].
Qed.

Lemma maps_fun_step : forall s o s' r,
  inv s -> step s o = (s', r) -> maps_fun s'.
Proof.
  intros s o s' r (Hs & Hm & Hf) H m1 m2 In1 In2 V P.
  destruct (step_s2 _ _ _ _ H) as (N1 & _ & _).
  destruct (N1 m1 In1) as [O1 | (pa & ipa & size & to & perm & first & n & E & IO & G & I & D & Nm1)];
  destruct (N1 m2 In2) as [O2 | (pa' & ipa' & size' & to' & perm' & first' & n' & E' & IO' & G' & I' & D' & Nm2)].
  - exact (Hf _ _ O1 O2 V P).
  - exfalso. apply in_new_maps in Nm2 as (k & Hk & ->). simpl in *.
    destruct (ipa_ok_spec _ _ _ _ IO') as [A Free].
    destruct (index_n _ _ _ _ _ I') as [Nn _].
    apply (Free m1 O1 V). rewrite P. apply new_ipa_in_range; [exact A | lia].
  - exfalso. apply in_new_maps in Nm1 as (k & Hk & ->). simpl in *.
    destruct (ipa_ok_spec _ _ _ _ IO) as [A Free].
    destruct (index_n _ _ _ _ _ I) as [Nn _].
    apply (Free m2 O2 (eq_sym V)). rewrite <- P. apply new_ipa_in_range; [exact A | lia].
  - rewrite E in E'. injection E' as <- <- <- <- <-. rewrite I in I'. injection I' as <- <-.
    apply in_new_maps in Nm1 as (k1 & Hk1 & ->). apply in_new_maps in Nm2 as (k2 & Hk2 & ->).
    simpl in P. assert (k1 = k2) by lia. subst k2. reflexivity.
Qed.

Theorem step_preserves_inv : forall s o s' r,
  inv s -> step s o = (s', r) -> inv s'.
Proof.
  intros s o s' r Hi H. split; [|split].
  - intros i x Hx. eapply slot_ok_step; eauto.
  - eapply maps_ok_step; eauto.
  - eapply maps_fun_step; eauto.
Qed.

Lemma boot_inv : forall b n ib, inv (boot b n ib).
Proof.
  intros b n ib. split; [|split].
  - intros i x Hx. simpl in Hx. apply nth_error_In, repeat_spec in Hx. subst x.
    split; [intros Hb; contradiction Hb; reflexivity | intros g []].
  - intros m [].
  - intros m1 m2 [].
Qed.

Theorem reachable_inv : forall s, reachable s -> inv s.
Proof.
  induction 1; [apply boot_inv | eapply step_preserves_inv; eauto].
Qed.

(** ** Theorem 2: a refused call changes nothing *)

Lemma donate_refused : forall s pa size to s' e,
  donate s pa size to = (s', RErr e) -> s' = s.
Proof.
  intros s pa size to s' e H. unfold donate, ranged in H.
  repeat match type of H with context [match ?x with _ => _ end] => destruct x end;
    try discriminate; injection H; intros; subst; reflexivity.
Qed.

Theorem refused_changes_nothing : forall s o s' e,
  step s o = (s', RErr e) -> s' = s.
Proof.
  intros s o s' e H. destruct o; simpl in H.
  3: { unfold donate_map in H. destruct (ipa_ok s ipa size to); simpl in H;
       [|injection H; intros; subst; reflexivity].
       destruct (donate s pa size to) as [s1 r1] eqn:D.
       destruct r1 as [| e1 | cnt e1 | d]; destruct (index s pa size) as [[first k]|];
         try discriminate;
         injection H as -> ->; eapply donate_refused; eauto. }
  all: unfold assign, donate, share, unshare, reclaim, set_fail, write, read,
      gwrite, gread, ranged in H;
    repeat match type of H with context [match ?x with _ => _ end] => destruct x end;
    try discriminate; injection H; intros; subst; reflexivity.
Qed.

(** ** Theorem 3: ledger.Check holds in every reachable state *)

Lemma check_slot_ok : forall x, check_slot x = true <-> ledger_ok x.
Proof.
  unfold check_slot, ledger_ok. intros x.
  destruct (N.eqb_spec (s_borrower x) ONone) as [E|E]; simpl.
  - split; [intros _ Hb; contradiction | reflexivity].
  - rewrite andb_true_iff, N.eqb_eq. tauto.
Qed.

Theorem check_correct : forall s,
  check s = true <-> forall i x, nth_error (slots s) i = Some x -> ledger_ok x.
Proof.
  unfold check. intros s. rewrite forallb_forall. split.
  - intros H i x Hx. apply check_slot_ok, H. eapply nth_error_In; eauto.
  - intros H x Hx. apply In_nth_error in Hx as [i Hi]. apply check_slot_ok. eauto.
Qed.

Theorem reachable_check : forall s, reachable s -> check s = true.
Proof.
  intros s R. apply check_correct. intros i x Hx.
  apply (proj1 (reachable_inv s R) i x Hx).
Qed.

(** ** Theorem 4: hypervisor pages are never mapped, lent or accessible *)

Theorem hyp_pages_isolated : forall s i x,
  reachable s -> nth_error (slots s) i = Some x -> s_owner x = OHyp ->
  s_borrower x = ONone /\ (forall c, acc s c i = false) /\
  (forall m, In m (s2 s) -> m_pa m <> i).
Proof.
  intros s i x R Hx O. destruct (reachable_inv s R) as (Hs & Hm & _).
  destruct (Hs i x Hx) as [L _].
  assert (B : s_borrower x = ONone).
  { destruct (N.eqb_spec (s_borrower x) ONone) as [E|E]; [exact E|].
    destruct (L E) as [G _]. rewrite O in G. discriminate. }
  split; [exact B|split].
  - intros c. rewrite (acc_slot _ _ _ _ Hx). apply not_true_is_false. intros C.
    apply can_access_slot_spec in C as (N1 & N2 & [C|C]); congruence.
  - intros m Hin E. destruct (Hm m Hin) as (G & y & Hy & Oy). rewrite E, Hx in Hy.
    injection Hy as <-. rewrite O in Oy. rewrite <- Oy in G. discriminate.
Qed.

Theorem hyp_pages_never_mapped : forall s m x,
  reachable s -> In m (s2 s) -> nth_error (slots s) (m_pa m) = Some x -> s_owner x <> OHyp.
Proof.
  intros s m x R Hin Hx O. destruct (hyp_pages_isolated s _ x R Hx O) as (_ & _ & N).
  exact (N m Hin eq_refl).
Qed.

Theorem hyp_pages_stay : forall s o s' r i x,
  step s o = (s', r) -> nth_error (slots s) i = Some x -> s_owner x = OHyp ->
  exists x', nth_error (slots s') i = Some x' /\ s_owner x' = OHyp.
Proof.
  intros s o s' r i x H Hx O. destruct (step_frame _ _ _ _ H) as (_ & _ & L & F).
  destruct (nth_error_some_length _ _ _ _ L Hx) as [x' Hx'].
  exists x'. split; [exact Hx'|].
  destruct (F _ _ Hx') as (y & Hy & [->|C]); rewrite Hx in Hy; injection Hy as <-; [exact O|].
  destruct o; simpl in C.
  - destruct C as (_ & O' & _). rewrite O in O'. discriminate.
  - destruct C as (_ & O' & _). rewrite O in O'. discriminate.
  - destruct C as (_ & O' & _). rewrite O in O'. discriminate.
  - destruct C as (_ & _ & _ & ->). exact O.
  - destruct C as (_ & _ & _ & ->). exact O.
  - destruct C as (G & O' & _). rewrite O in O'. subst g. discriminate.
  - subst x'. exact O.
  - destruct C as (_ & ->). exact O.
  - contradiction.
  - destruct C as (_ & ->). exact O.
  - contradiction.
Qed.

(** ** Theorem 5: no page is accessible to two compartments unless its
    owner, a guest, lent it to the control partition *)



Theorem exclusive_access : forall s c1 c2 i,
  reachable s -> acc s c1 i = true -> acc s c2 i = true -> c1 <> c2 ->
  exists x, nth_error (slots s) i = Some x /\ is_guest (s_owner x) = true /\
    s_borrower x = OControl /\
    ((c1 = s_owner x /\ c2 = OControl) \/ (c1 = OControl /\ c2 = s_owner x)).
Proof.
  intros s c1 c2 i R A1 A2 D. unfold acc in A1, A2.
  destruct (nth_error (slots s) i) as [x|] eqn:Hx; [|discriminate].
  exists x. split; [reflexivity|].
  destruct (proj1 (reachable_inv s R) i x Hx) as [L _].
  apply can_access_slot_spec in A1 as (N1 & H1 & [O1|B1]);
  apply can_access_slot_spec in A2 as (N2 & H2 & [O2|B2]); try congruence.
  - assert (Bn : s_borrower x <> ONone) by congruence.
    destruct (L Bn) as [G B]. intuition congruence.
  - assert (Bn : s_borrower x <> ONone) by congruence.
    destruct (L Bn) as [G B]. intuition congruence.
Qed.

Theorem borrower_set_only_by_owner_share : forall s o s' r i x x',
  step s o = (s', r) -> nth_error (slots s) i = Some x -> s_borrower x = ONone ->
  nth_error (slots s') i = Some x' -> s_borrower x' <> ONone ->
  (exists pa size, o = Share pa size (s_owner x)) /\
  s_owner x' = s_owner x /\ s_borrower x' = OControl.
Proof.
  intros s o s' r i x x' H Hx B Hx' B'. destruct (step_frame _ _ _ _ H) as (_ & _ & _ & F).
  destruct (F _ _ Hx') as (y & Hy & [->|C]); rewrite Hx in Hy; injection Hy as <-;
    [congruence|].
  destruct o; simpl in C.
  - destruct C as (_ & _ & ->). simpl in B'. congruence.
  - destruct C as (_ & _ & ->). simpl in B'. congruence.
  - destruct C as (_ & _ & ->). simpl in B'. congruence.
  - destruct C as (_ & O & _ & ->). simpl. subst g. eauto.
  - destruct C as (_ & _ & B0 & _). congruence.
  - destruct C as (_ & _ & _ & ->). simpl in B'. congruence.
  - subst x'. simpl in B'. congruence.
  - destruct C as (_ & ->). simpl in B'. congruence.
  - contradiction.
  - destruct C as (_ & ->). simpl in B'. congruence.
  - contradiction.
Qed.

(** ** Theorem 6: stage 2 maps only what the ledger gives the VM *)

Theorem s2_mapped_owned : forall s m,
  reachable s -> In m (s2 s) ->
  is_guest (m_vm m) = true /\ acc s (m_vm m) (m_pa m) = true /\
  exists x, nth_error (slots s) (m_pa m) = Some x /\ s_owner x = m_vm m.
Proof.
  intros s m R Hin. destruct (reachable_inv s R) as (_ & Hm & _).
  destruct (Hm m Hin) as (G & x & Hx & O). split; [exact G|split; [|eauto]].
  rewrite (acc_slot _ _ _ _ Hx). apply can_access_slot_spec.
  split; [intros E; rewrite E in G; discriminate|].
  split; [intros E; rewrite E in G; discriminate|auto].
Qed.

Theorem s2_exclusive : forall s m1 m2,
  reachable s -> In m1 (s2 s) -> In m2 (s2 s) -> m_pa m1 = m_pa m2 -> m_vm m1 = m_vm m2.
Proof.
  intros s m1 m2 R I1 I2 P.
  destruct (s2_mapped_owned s m1 R I1) as (_ & _ & x1 & H1 & O1).
  destruct (s2_mapped_owned s m2 R I2) as (_ & _ & x2 & H2 & O2).
  rewrite P, H2 in H1. injection H1 as <-. congruence.
Qed.

Theorem s2_functional : forall s m1 m2,
  reachable s -> In m1 (s2 s) -> In m2 (s2 s) ->
  m_vm m1 = m_vm m2 -> m_ipa m1 = m_ipa m2 -> m1 = m2.
Proof. intros s m1 m2 R. exact (proj2 (proj2 (reachable_inv s R)) m1 m2). Qed.

(** ** Theorem 7: reclaimed pages are zeroed before anyone else gets them *)

Theorem reclaim_zeroes : forall s g s' r i x x',
  step s (Reclaim g) = (s', r) -> nth_error (slots s) i = Some x ->
  nth_error (slots s') i = Some x' -> s_owner x = g -> s_owner x' <> g ->
  s_data x' = [] /\ s_owner x' = OControl /\ s_borrower x' = ONone.
Proof.
  intros s g s' r i x x' H Hx Hx' O O'. destruct (step_frame _ _ _ _ H) as (_ & _ & _ & F).
  destruct (F _ _ Hx') as (y & Hy & [->|C]); rewrite Hx in Hy; injection Hy as <-;
    [congruence|].
  simpl in C. destruct C as (_ & _ & _ & ->). auto.
Qed.

Theorem reclaim_unmaps : forall s g s' r m,
  step s (Reclaim g) = (s', r) -> is_guest g = true -> In m (s2 s') -> m_vm m <> g.
Proof.
  intros s g s' r m H G Hin. destruct (step_s2 _ _ _ _ H) as (_ & _ & N3).
  exact (N3 g m eq_refl G Hin).
Qed.

Theorem reclaim_failed_page_stays : forall s g s' r i x,
  step s (Reclaim g) = (s', r) -> nth_error (slots s) i = Some x ->
  s_owner x = g -> s_zfail x = true -> nth_error (slots s') i = Some x.
Proof.
  intros s g s' r i x H Hx O Z. simpl in H. unfold reclaim in H.
  destruct (is_guest g); [|injection H as <- _; exact Hx].
  destruct (reclaim_slots g (slots s)) as [[l cnt] fl] eqn:R.
  injection H as <- _. simpl. eapply reclaim_slots_dirty; eauto.
Qed.

Theorem reclaim_complete : forall s g s' n i x',
  step s (Reclaim g) = (s', RReclaim n None) -> is_guest g = true ->
  nth_error (slots s') i = Some x' -> s_owner x' <> g.
Proof.
  intros s g s' n i x' H G Hx'. simpl in H. unfold reclaim in H. rewrite G in H.
  destruct (reclaim_slots g (slots s)) as [[l cnt] fl] eqn:R.
  injection H as <- _ F. destruct fl; [discriminate|]. simpl in Hx'.
  eapply reclaim_slots_complete; eauto.
  - intros E. rewrite E in G. discriminate.
  - eapply nth_error_In; eauto.
Qed.

Theorem guest_data_confined : forall s i x g,
  reachable s -> nth_error (slots s) i = Some x -> In g (s_data x) -> is_guest g = true ->
  s_owner x = g.
Proof.
  intros s i x g R Hx Hg G. exact (proj2 (proj1 (reachable_inv s R) i x Hx) g Hg G).
Qed.

Theorem guest_data_reaches_only_sharer : forall s i x g c,
  reachable s -> nth_error (slots s) i = Some x -> In g (s_data x) -> is_guest g = true ->
  acc s c i = true -> c = g \/ (c = OControl /\ s_borrower x = OControl).
Proof.
  intros s i x g c R Hx Hg G A.
  destruct (proj1 (reachable_inv s R) i x Hx) as [L D].
  rewrite (acc_slot _ _ _ _ Hx) in A. apply can_access_slot_spec in A as (N & _ & [O|B]).
  - left. rewrite <- O. exact (D g Hg G).
  - right. assert (Bn : s_borrower x <> ONone) by congruence.
    destruct (L Bn) as [_ B']. split; congruence.
Qed.

Theorem mapped_page_holds_no_other_guest_data : forall s m x g,
  reachable s -> In m (s2 s) -> nth_error (slots s) (m_pa m) = Some x ->
  In g (s_data x) -> is_guest g = true -> g = m_vm m.
Proof.
  intros s m x g R Hin Hx Hg G.
  destruct (s2_mapped_owned s m R Hin) as (_ & _ & y & Hy & O).
  rewrite Hx in Hy. injection Hy as <-.
  rewrite <- O. symmetry. eapply guest_data_confined; eauto.
Qed.

(** ** Theorem 8: the control partition loses a page when it donates it *)

Theorem donate_revokes_control : forall s o s' pa size g first n i,
  reachable s ->
  (o = Donate pa size g \/ exists ipa perm, o = DonateMap pa ipa size g perm) ->
  step s o = (s', ROk) -> index s pa size = Some (first, n) -> (first <= i < first + n)%nat ->
  acc s' OControl i = false /\
  exists x', nth_error (slots s') i = Some x' /\ s_owner x' = g /\ s_borrower x' = ONone.
Proof.
  intros s o s' pa size g first n i R Ho H I Ri.
  assert (D : exists s1, donate s pa size g = (s1, ROk) /\ slots s' = slots s1).
  { destruct Ho as [->|(ipa & perm & ->)]; simpl in H; [eauto|].
    unfold donate_map in H. destruct (ipa_ok s ipa size g); simpl in H; [|discriminate].
    destruct (donate s pa size g) as [s1 [| e | cnt e | d]];
      try rewrite I in H; try discriminate.
    injection H as <-. eauto. }
  destruct D as (s1 & D & Sl).
  destruct (index_spec _ _ _ _ _ I) as [Len _].
  destruct (nth_error (slots s) i) as [x|] eqn:Hx; [|apply nth_error_None in Hx; lia].
  destruct (donate_ok_in _ _ _ _ _ _ _ _ _ D I Ri Hx) as [A O].
  assert (G : is_guest g = true)
    by (unfold donate in D; destruct (is_guest g); [reflexivity|discriminate]).
  destruct (proj1 (reachable_inv s R) i x Hx) as [L _].
  assert (B : s_borrower x = ONone).
  { destruct (N.eqb_spec (s_borrower x) ONone) as [E|E]; [exact E|].
    destruct (L E) as [Gx _]. rewrite O in Gx. discriminate. }
  rewrite <- Sl in A. split.
  - unfold acc. rewrite A. apply not_true_is_false. intros C.
    apply can_access_slot_spec in C as (_ & _ & [C|C]); simpl in C.
    + rewrite C in G. discriminate.
    + rewrite B in C. discriminate.
  - exists (set_owner g x). simpl. auto.
Qed.

Theorem control_access_gained_only_by : forall s o s' r i,
  step s o = (s', r) -> acc s OControl i = false -> acc s' OControl i = true ->
  exists x, nth_error (slots s) i = Some x /\
    ((exists pa size, o = Assign pa size OControl /\ s_owner x = ONone) \/
     (exists pa size, o = Share pa size (s_owner x)) \/
     o = Reclaim (s_owner x)).
Proof.
  intros s o s' r i H A A'. destruct (step_frame _ _ _ _ H) as (_ & _ & _ & F).
  unfold acc in A'. destruct (nth_error (slots s') i) as [x'|] eqn:Hx'; [|discriminate].
  destruct (F _ _ Hx') as (x & Hx & [->|C]); rewrite (acc_slot _ _ _ _ Hx) in A;
    [congruence|].
  exists x. split; [exact Hx|].
  apply can_access_slot_spec in A' as (_ & _ & A').
  assert (NB : s_borrower x <> OControl).
  { intros E. rewrite (proj2 (can_access_slot_spec OControl x)) in A; [discriminate|].
    split; [discriminate|split; [discriminate|auto]]. }
  assert (NO : s_owner x <> OControl).
  { intros E. rewrite (proj2 (can_access_slot_spec OControl x)) in A; [discriminate|].
    split; [discriminate|split; [discriminate|auto]]. }
  destruct o; simpl in C.
  - destruct C as (_ & O & ->). simpl in A'. destruct A' as [E|E]; [|congruence].
    left. subst to. eauto.
  - destruct C as (G & _ & ->). simpl in A'. destruct A' as [E|E]; [|congruence].
    rewrite E in G. discriminate.
  - destruct C as (G & _ & ->). simpl in A'. destruct A' as [E|E]; [|congruence].
    rewrite E in G. discriminate.
  - destruct C as (_ & O & _ & ->). right. left. subst g. eauto.
  - destruct C as (_ & _ & _ & ->). simpl in A'. destruct A' as [E|E]; [congruence|discriminate].
  - destruct C as (_ & O & _ & ->). right. right. subst g. reflexivity.
  - subst x'. simpl in A'. destruct A' as [E|E]; congruence.
  - destruct C as (_ & ->). simpl in A'. destruct A' as [E|E]; congruence.
  - contradiction.
  - destruct C as (_ & ->). simpl in A'. destruct A' as [E|E]; congruence.
  - contradiction.
Qed.

(** ** Theorem 9: integrity. No step by anyone but guest g (other than
    destroying g) changes the owner or the contents of a page of g that is
    not lent to the actor, nor removes any of g's stage 2 translations. *)

Theorem integrity : forall s o s' r g i x,
  inv s -> step s o = (s', r) -> is_guest g = true -> actor o <> g -> o <> Reclaim g ->
  nth_error (slots s) i = Some x -> s_owner x = g -> s_borrower x <> actor o ->
  (exists x', nth_error (slots s') i = Some x' /\ s_owner x' = g /\ s_data x' = s_data x) /\
  (forall m, In m (s2 s) -> m_vm m = g -> In m (s2 s')).
Proof.
  intros s o s' r g i x Hi H G Act NR Hx O B. split.
  - destruct (step_frame _ _ _ _ H) as (_ & _ & L & F).
    destruct (nth_error_some_length _ _ _ _ L Hx) as [x' Hx'].
    exists x'. split; [exact Hx'|].
    destruct (F _ _ Hx') as (y & Hy & [->|C]); rewrite Hx in Hy; injection Hy as <-; [auto|].
    destruct o; simpl in C, Act.
    + destruct C as (_ & O' & _). rewrite O in O'. rewrite O' in G. discriminate.
    + destruct C as (_ & O' & _). rewrite O in O'. rewrite O' in G. discriminate.
    + destruct C as (_ & O' & _). rewrite O in O'. rewrite O' in G. discriminate.
    + destruct C as (_ & O' & _). congruence.
    + destruct C as (_ & O' & _). congruence.
    + destruct C as (_ & O' & _). congruence.
    + subst x'. auto.
    + destruct C as (A & _). apply can_access_slot_spec in A as (_ & _ & [A|A]); simpl in B;
        congruence.
    + contradiction.
    + destruct C as ((m & Min & Mv & Mp) & _).
      destruct (proj1 (proj2 Hi) m Min) as (_ & y & Hy & Oy). rewrite Mp, Hx in Hy.
      injection Hy as <-. congruence.
    + contradiction.
  - intros m Hin V. destruct (step_s2 _ _ _ _ H) as (_ & N2 & _).
    destruct (N2 m Hin) as [M|(g' & E & V')]; [exact M|]. subst o. congruence.
Qed.

Corollary control_cannot_touch_guest_pages : forall s o s' r g i x,
  inv s -> step s o = (s', r) -> actor o = OControl -> is_guest g = true -> o <> Reclaim g ->
  nth_error (slots s) i = Some x -> s_owner x = g -> s_borrower x = ONone ->
  exists x', nth_error (slots s') i = Some x' /\ s_owner x' = g /\ s_data x' = s_data x.
Proof.
  intros s o s' r g i x Hi H A G NR Hx O B.
  refine (proj1 (integrity s o s' r g i x Hi H G _ NR Hx O _)).
  - rewrite A. intros E. rewrite <- E in G. discriminate.
  - rewrite A, B. discriminate.
Qed.

(** ** Theorem 10: noninterference (confidentiality). The contents of a
    guest's pages that it has not lent (its secrets) do not influence what
    any other compartment observes, whatever the others do, as long as the
    guest shares nothing. *)

(** A page private to [g]: owned by [g] and lent to nobody. *)
Definition private (g : owner) (x : slot) : bool :=
  (s_owner x =? g)%N && (s_borrower x =? ONone)%N.

(** Two pages that look the same to everyone but [g]. *)
Definition slot_low (g : owner) (x y : slot) : Prop :=
  s_owner x = s_owner y /\ s_borrower x = s_borrower y /\ s_zfail x = s_zfail y /\
  (private g x = false -> s_data x = s_data y).

(** Two states that differ at most in the contents of [g]'s private pages. *)
Definition low_equiv (g : owner) (sa sb : state) : Prop :=
  base sa = base sb /\ ipa_bits sa = ipa_bits sb /\ s2 sa = s2 sb /\
  Forall2 (slot_low g) (slots sa) (slots sb).

Lemma Forall2_nth : forall {A B} (R : A -> B -> Prop) l1 l2 i x,
  Forall2 R l1 l2 -> nth_error l1 i = Some x ->
  exists y, nth_error l2 i = Some y /\ R x y.
Proof.
  intros A B R l1 l2 i x F. revert i.
  induction F as [|a b la lb Rab F IH]; intros [|i] Hn; simpl in *;
    try discriminate; [injection Hn as <-; eauto | eauto].
Qed.

Lemma Forall2_nth_none : forall {A B} (R : A -> B -> Prop) l1 l2 i,
  Forall2 R l1 l2 -> nth_error l1 i = None -> nth_error l2 i = None.
Proof.
  intros A B R l1 l2 i F. revert i.
  induction F as [|a b la lb Rab F IH]; intros [|i] Hn; simpl in *;
    try discriminate; auto.
Qed.

Lemma upd_from_low : forall (R : slot -> slot -> Prop) f lo hi l1 l2 i,
  Forall2 R l1 l2 ->
  (forall k x y, in_range lo hi (i + k) = true -> nth_error l1 k = Some x ->
     nth_error l2 k = Some y -> R x y -> R (f x) (f y)) ->
  Forall2 R (upd_from f lo hi i l1) (upd_from f lo hi i l2).
Proof.
  intros R f lo hi l1 l2 i F. revert i. induction F as [|x y xs ys Rxy F IH];
    intros i P; simpl; constructor.
  - destruct (in_range lo hi i) eqn:E; [|exact Rxy].
    apply (P 0%nat); rewrite ?Nat.add_0_r; auto.
  - apply IH. intros k x' y' Hr H1 H2 Rk. apply (P (S k)); auto.
    replace (i + S k)%nat with (S i + k)%nat by lia. exact Hr.
Qed.

Lemma check_from_low : forall (R : slot -> slot -> Prop) ok lo hi l1 l2 i,
  Forall2 R l1 l2 -> (forall x y, R x y -> ok x = ok y) ->
  check_from ok lo hi i l1 = check_from ok lo hi i l2.
Proof.
  intros R ok lo hi l1 l2 i F. revert i.
  induction F as [|x y xs ys Rxy F IH]; intros i P; simpl; [reflexivity|].
  rewrite (P x y Rxy), IH by exact P. reflexivity.
Qed.

Lemma low_length : forall g sa sb,
  low_equiv g sa sb -> length (slots sa) = length (slots sb).
Proof.
  intros g sa sb (_ & _ & _ & F). induction F; simpl; congruence.
Qed.

Lemma index_low : forall g sa sb pa size,
  low_equiv g sa sb -> index sa pa size = index sb pa size.
Proof.
  intros g sa sb pa size L. pose proof (low_length _ _ _ L) as Len.
  destruct L as (B & _). unfold index, ram_end, npages. rewrite B, Len. reflexivity.
Qed.

Lemma page_of_low : forall g sa sb pa,
  low_equiv g sa sb -> page_of sa pa = page_of sb pa.
Proof. intros. unfold page_of. erewrite index_low; eauto. Qed.

(** Pages with the same low parts and the same contents stay related
    under any of the page updates. *)
Lemma slot_low_same_data : forall g x y,
  s_owner x = s_owner y -> s_borrower x = s_borrower y -> s_zfail x = s_zfail y ->
  s_data x = s_data y -> slot_low g x y.
Proof. intros. unfold slot_low. auto. Qed.

Lemma slot_low_public : forall g x y,
  slot_low g x y -> private g x = false -> s_data x = s_data y.
Proof. intros g x y (_ & _ & _ & D) P. auto. Qed.

Lemma slot_low_private : forall g x y,
  slot_low g x y -> private g x = private g y.
Proof. intros g x y (O & B & _). unfold private. rewrite O, B. reflexivity. Qed.

Lemma add_writer_low : forall g c x y,
  slot_low g x y -> slot_low g (add_writer c x) (add_writer c y).
Proof.
  intros g c x y (O & B & Z & D). unfold slot_low, add_writer, private in *. simpl.
  repeat split; auto. intros P. rewrite (D P). reflexivity.
Qed.

Lemma set_zfail_low : forall g b x y,
  slot_low g x y -> slot_low g (set_zfail b x) (set_zfail b y).
Proof.
  intros g b x y (O & B & Z & D). unfold slot_low, set_zfail, private in *. simpl. auto.
Qed.

(** A ranged call on related states: same result, related states, when
    [ok] only looks at the low parts and passes no private page. *)
Lemma ranged_low : forall g sa sb pa size ok f t1 r1 t2 r2,
  low_equiv g sa sb ->
  (forall x y, slot_low g x y -> ok x = ok y) ->
  (forall x, ok x = None -> private g x = false) ->
  (forall x y, s_owner x = s_owner y -> s_borrower x = s_borrower y -> s_zfail x = s_zfail y ->
     s_data x = s_data y -> slot_low g (f x) (f y)) ->
  ranged sa pa size ok f = (t1, r1) -> ranged sb pa size ok f = (t2, r2) ->
  low_equiv g t1 t2 /\ r1 = r2.
Proof.
  intros g sa sb pa size ok f t1 r1 t2 r2 L Ok Pub Fl H1 H2.
  unfold ranged in H1, H2. rewrite (index_low _ _ _ _ _ L) in H1.
  destruct L as (B & I & S & F).
  destruct (index sb pa size) as [[first n]|];
    [|injection H1 as <- <-; injection H2 as <- <-; repeat split; auto].
  rewrite (check_from_low _ _ _ _ _ _ _ F Ok) in H1.
  destruct (check_from ok first (first + n) 0 (slots sb)) eqn:C;
    [injection H1 as <- <-; injection H2 as <- <-; repeat split; auto|].
  injection H1 as <- <-; injection H2 as <- <-. simpl. repeat split; auto.
  apply upd_from_low; [exact F|]. intros k x y Hr Hx Hy Rxy.
  assert (Px : ok x = None).
  { rewrite (Ok x y Rxy). eapply check_from_none; eauto. }
  destruct Rxy as (O & Bo & Z & D). apply Fl; auto.
Qed.

Lemma set_owner_low : forall g o x y,
  s_owner x = s_owner y -> s_borrower x = s_borrower y -> s_zfail x = s_zfail y ->
  s_data x = s_data y -> slot_low g (set_owner o x) (set_owner o y).
Proof. intros. apply slot_low_same_data; simpl; auto. Qed.

Lemma set_borrower_low : forall g b x y,
  s_owner x = s_owner y -> s_borrower x = s_borrower y -> s_zfail x = s_zfail y ->
  s_data x = s_data y -> slot_low g (set_borrower b x) (set_borrower b y).
Proof. intros. apply slot_low_same_data; simpl; auto. Qed.

Lemma ok_low : forall g x y, slot_low g x y ->
  ok_free x = ok_free y /\ ok_donatable x = ok_donatable y /\
  (forall h, ok_sharable h x = ok_sharable h y) /\
  (forall h, ok_unsharable h x = ok_unsharable h y).
Proof.
  intros g x y (O & B & _). unfold ok_free, ok_donatable, ok_sharable, ok_unsharable.
  rewrite O, B. auto.
Qed.

Lemma not_private_owner : forall g x, s_owner x <> g -> private g x = false.
Proof.
  intros g x N. unfold private. destruct (N.eqb_spec (s_owner x) g); [contradiction|reflexivity].
Qed.

Lemma donate_low : forall g sa sb pa size to t1 r1 t2 r2,
  is_guest g = true -> low_equiv g sa sb ->
  donate sa pa size to = (t1, r1) -> donate sb pa size to = (t2, r2) ->
  low_equiv g t1 t2 /\ r1 = r2.
Proof.
  intros g sa sb pa size to t1 r1 t2 r2 G L H1 H2. unfold donate in H1, H2.
  destruct (is_guest to); [|injection H1 as <- <-; injection H2 as <- <-; auto].
  eapply ranged_low; eauto.
  - intros x y R. apply (ok_low _ _ _ R).
  - intros x O. apply ok_donatable_none in O. apply not_private_owner.
    rewrite O. intros E. rewrite <- E in G. discriminate.
  - intros. apply set_owner_low; auto.
Qed.

Lemma reclaim_slots_low : forall g h l1 l2 a1 n1 f1 a2 n2 f2,
  Forall2 (slot_low g) l1 l2 ->
  reclaim_slots h l1 = (a1, n1, f1) -> reclaim_slots h l2 = (a2, n2, f2) ->
  Forall2 (slot_low g) a1 a2 /\ n1 = n2 /\ f1 = f2.
Proof.
  intros g h l1 l2 a1 n1 f1 a2 n2 f2 F. revert a1 n1 f1 a2 n2 f2.
  induction F as [|x y xs ys Rxy F IH]; intros a1 n1 f1 a2 n2 f2 H1 H2; simpl in *.
  - injection H1 as <- <- <-. injection H2 as <- <- <-. auto.
  - pose proof Rxy as (O & B & Z & D). rewrite O, Z in H1.
    destruct (s_owner y =? h)%N; [destruct (s_zfail y) eqn:Zy|].
    + injection H1 as <- <- <-. injection H2 as <- <- <-.
      split; [constructor; [exact Rxy | exact F] | auto].
    + destruct (reclaim_slots h xs) as [[b1 m1] e1] eqn:R1.
      destruct (reclaim_slots h ys) as [[b2 m2] e2] eqn:R2.
      destruct (IH _ _ _ _ _ _ eq_refl eq_refl) as (Fb & <- & <-).
      injection H1 as <- <- <-. injection H2 as <- <- <-.
      split; [constructor; [apply slot_low_same_data; simpl; congruence | exact Fb] | auto].
    + destruct (reclaim_slots h xs) as [[b1 m1] e1] eqn:R1.
      destruct (reclaim_slots h ys) as [[b2 m2] e2] eqn:R2.
      destruct (IH _ _ _ _ _ _ eq_refl eq_refl) as (Fb & <- & <-).
      injection H1 as <- <- <-. injection H2 as <- <- <-.
      split; [constructor; [exact Rxy | exact Fb] | auto].
Qed.

Lemma upd_at_low : forall g f i l1 l2,
  Forall2 (slot_low g) l1 l2 ->
  (forall x y, nth_error l1 i = Some x -> nth_error l2 i = Some y ->
     slot_low g x y -> slot_low g (f x) (f y)) ->
  Forall2 (slot_low g) (upd_at f i l1) (upd_at f i l2).
Proof.
  intros g f i l1 l2 F P. apply upd_from_low; [exact F|].
  intros k x y Hr H1 H2 R. apply in_range_spec in Hr. assert (k = i) by lia. subst k.
  auto.
Qed.

Definition is_share_by (g : owner) (o : op) : bool :=
  match o with Share _ _ h => (h =? g)%N | _ => false end.

Theorem low_equiv_step : forall g sa sb o t1 r1 t2 r2,
  is_guest g = true -> inv sa -> low_equiv g sa sb -> is_share_by g o = false ->
  step sa o = (t1, r1) -> step sb o = (t2, r2) ->
  low_equiv g t1 t2 /\ (actor o <> g -> r1 = r2).
Proof.
  intros g sa sb o t1 r1 t2 r2 G Hi L NS H1 H2.
  pose proof L as (B & I & S & F).
  destruct o; simpl in H1, H2, NS.
  - (* Assign *)
    unfold assign in H1, H2. destruct ((to =? OHyp)%N || (to =? OControl)%N);
      [|injection H1 as <- <-; injection H2 as <- <-; auto].
    destruct (ranged_low g sa sb pa size ok_free (set_owner to) t1 r1 t2 r2 L)
      as [L' R]; auto.
    + intros x y Rxy. apply (ok_low _ _ _ Rxy).
    + intros x O. apply ok_free_none in O. apply not_private_owner.
      rewrite O. intros E. rewrite <- E in G. discriminate.
    + intros. apply set_owner_low; auto.
  - (* Donate *)
    destruct (donate_low _ _ _ _ _ _ _ _ _ _ G L H1 H2). auto.
  - (* DonateMap *)
    unfold donate_map in H1, H2. unfold ipa_ok in H1, H2. rewrite I, S in H1.
    fold (ipa_ok sb ipa size to) in H1, H2.
    destruct (ipa_ok sb ipa size to); simpl in H1, H2;
      [|injection H1 as <- <-; injection H2 as <- <-; auto].
    rewrite (index_low _ _ _ _ _ L) in H1.
    destruct (donate sa pa size to) as [u1 q1] eqn:D1.
    destruct (donate sb pa size to) as [u2 q2] eqn:D2.
    destruct (donate_low _ _ _ _ _ _ _ _ _ _ G L D1 D2) as [Lu <-].
    destruct Lu as (Bu & Iu & Su & Fu).
    destruct q1 as [| e | cnt e | d]; destruct (index sb pa size) as [[first k]|];
      injection H1 as <- <-; injection H2 as <- <-;
      try (split; [repeat split; auto | auto]).
    simpl. rewrite Su. auto.
  - (* Share, by someone else than g *)
    assert (Ng : g0 <> g) by (intros E; subst; rewrite N.eqb_refl in NS; discriminate).
    unfold share in H1, H2. destruct (is_guest g0);
      [|injection H1 as <- <-; injection H2 as <- <-; auto].
    destruct (ranged_low g sa sb pa size (ok_sharable g0) (set_borrower OControl)
                t1 r1 t2 r2 L) as [L' R]; auto.
    + intros x y Rxy. apply (ok_low _ _ _ Rxy).
    + intros x O. apply ok_sharable_none in O as [O _]. apply not_private_owner. congruence.
    + intros. apply set_borrower_low; auto.
  - (* Unshare *)
    unfold unshare in H1, H2. destruct (is_guest g0);
      [|injection H1 as <- <-; injection H2 as <- <-; auto].
    destruct (ranged_low g sa sb pa size (ok_unsharable g0) (set_borrower ONone)
                t1 r1 t2 r2 L) as [L' R]; auto.
    + intros x y Rxy. apply (ok_low _ _ _ Rxy).
    + intros x O. apply ok_unsharable_none in O as [_ O]. unfold private.
      destruct (N.eqb_spec (s_borrower x) ONone); [contradiction|].
      apply andb_false_r.
    + intros. apply set_borrower_low; auto.
  - (* Reclaim *)
    unfold reclaim in H1, H2. destruct (is_guest g0);
      [|injection H1 as <- <-; injection H2 as <- <-; auto].
    destruct (reclaim_slots g0 (slots sa)) as [[a1 n1] f1] eqn:R1.
    destruct (reclaim_slots g0 (slots sb)) as [[a2 n2] f2] eqn:R2.
    destruct (reclaim_slots_low _ _ _ _ _ _ _ _ _ _ F R1 R2) as (Fa & <- & <-).
    injection H1 as <- <-; injection H2 as <- <-. simpl. rewrite S.
    repeat split; auto.
  - (* SetFail *)
    unfold set_fail in H1, H2. rewrite (page_of_low _ _ _ _ L) in H1.
    destruct (page_of sb pa) as [j|];
      injection H1 as <- <-; injection H2 as <- <-; [|auto].
    simpl. repeat split; auto. apply upd_at_low; [exact F|].
    intros. apply set_zfail_low; auto.
  - (* Write *)
    unfold write in H1, H2. rewrite (page_of_low _ _ _ _ L) in H1.
    destruct (page_of sb pa) as [j|];
      [|injection H1 as <- <-; injection H2 as <- <-; auto].
    assert (A : acc sa c j = acc sb c j).
    { unfold acc. destruct (nth_error (slots sa) j) as [x|] eqn:Hx.
      - destruct (Forall2_nth _ _ _ _ _ F Hx) as (y & Hy & O & Bo & _). rewrite Hy.
        unfold can_access_slot. rewrite O, Bo. reflexivity.
      - rewrite (Forall2_nth_none _ _ _ _ F Hx). reflexivity. }
    rewrite A in H1. destruct (acc sb c j);
      injection H1 as <- <-; injection H2 as <- <-; [|auto].
    simpl. repeat split; auto. apply upd_at_low; [exact F|].
    intros. apply add_writer_low; auto.
  - (* Read *)
    unfold read in H1, H2. rewrite (page_of_low _ _ _ _ L) in H1.
    destruct (page_of sb pa) as [j|];
      [|injection H1 as <- <-; injection H2 as <- <-; auto].
    destruct (nth_error (slots sa) j) as [x|] eqn:Hx.
    + destruct (Forall2_nth _ _ _ _ _ F Hx) as (y & Hy & Rxy). rewrite Hy in H2.
      pose proof Rxy as (O & Bo & _).
      assert (A : can_access_slot c x = can_access_slot c y)
        by (unfold can_access_slot; rewrite O, Bo; reflexivity).
      rewrite A in H1. destruct (can_access_slot c y) eqn:Ay;
        injection H1 as <- <-; injection H2 as <- <-; split; auto.
      intros Nc. simpl in Nc. f_equal. apply (slot_low_public g x y Rxy).
      apply can_access_slot_spec in A as (Nn & _ & [Oc|Bc]).
      * apply not_private_owner. congruence.
      * unfold private. destruct (N.eqb_spec (s_borrower x) ONone); [congruence|].
        apply andb_false_r.
    + rewrite (Forall2_nth_none _ _ _ _ F Hx) in H2.
      injection H1 as <- <-; injection H2 as <- <-. auto.
  - (* GWrite *)
    unfold gwrite, translate in H1, H2. rewrite S in H1. fold (translate sb g0 (ipa / page_size)) in H1, H2.
    destruct (translate sb g0 (ipa / page_size)) as [m|];
      [destruct (perm_write (m_perm m))|];
      injection H1 as <- <-; injection H2 as <- <-; try (split; [repeat split|]; auto; fail).
    simpl. split; [repeat split; auto|auto]. apply upd_at_low; [exact F|].
    intros. apply add_writer_low; auto.
  - (* GRead *)
    unfold gread, translate in H1, H2. rewrite S in H1.
    fold (translate sb g0 (ipa / page_size)) in H1, H2.
    destruct (translate sb g0 (ipa / page_size)) as [m|] eqn:T;
      [destruct (perm_read (m_perm m))|];
      try (injection H1 as <- <-; injection H2 as <- <-; auto; fail).
    destruct (nth_error (slots sa) (m_pa m)) as [x|] eqn:Hx.
    + destruct (Forall2_nth _ _ _ _ _ F Hx) as (y & Hy & Rxy). rewrite Hy in H2.
      injection H1 as <- <-; injection H2 as <- <-. split; auto.
      intros Nc. simpl in Nc. f_equal. apply (slot_low_public g x y Rxy).
      apply translate_some in T as (Tin & Tv & _). rewrite <- S in Tin.
      destruct (proj1 (proj2 Hi) m Tin) as (_ & x' & Hx' & Ox).
      rewrite Hx in Hx'. injection Hx' as <-. apply not_private_owner. congruence.
    + rewrite (Forall2_nth_none _ _ _ _ F Hx) in H2.
      injection H1 as <- <-; injection H2 as <- <-. auto.
Qed.

(** What the compartments other than [g] see of a run: the results of
    their own operations. *)
Definition seen_by_others (g : owner) (rs : list (op * result)) : list (op * result) :=
  filter (fun p => negb (actor (fst p) =? g)%N) rs.

Theorem noninterference : forall g ops sa sb,
  is_guest g = true -> reachable sa -> low_equiv g sa sb ->
  forallb (fun o => negb (is_share_by g o)) ops = true ->
  low_equiv g (fst (run sa ops)) (fst (run sb ops)) /\
  seen_by_others g (snd (run sa ops)) = seen_by_others g (snd (run sb ops)).
Proof.
  intros g ops. induction ops as [|o os IH]; intros sa sb G R L NS; simpl; [auto|].
  simpl in NS. apply andb_true_iff in NS as [NS1 NS2]. apply negb_true_iff in NS1.
  destruct (step sa o) as [t1 r1] eqn:H1. destruct (step sb o) as [t2 r2] eqn:H2.
  destruct (low_equiv_step g sa sb o t1 r1 t2 r2 G (reachable_inv sa R) L NS1 H1 H2)
    as [L' Res].
  assert (R' : reachable t1) by (eapply reach_step; eauto).
  destruct (IH t1 t2 G R' L' NS2) as [IL IS].
  destruct (run t1 os) as [u1 rs1] eqn:E1. destruct (run t2 os) as [u2 rs2] eqn:E2.
  simpl in *. split; [exact IL|].
  destruct (N.eqb_spec (actor o) g) as [A|A]; simpl; [exact IS|].
  rewrite (Res A), IS. reflexivity.
Qed.
