(** Every main theorem must depend on no axiom: proofs/scripts/check-assumptions.sh
    fails the build unless each line below prints "Closed under the global
    context". *)
From Bulkhead Require Import Model Proofs.

Print Assumptions step_preserves_inv.
Print Assumptions reachable_inv.
Print Assumptions refused_changes_nothing.
Print Assumptions check_correct.
Print Assumptions reachable_check.
Print Assumptions hyp_pages_isolated.
Print Assumptions hyp_pages_never_mapped.
Print Assumptions hyp_pages_stay.
Print Assumptions exclusive_access.
Print Assumptions borrower_set_only_by_owner_share.
Print Assumptions s2_mapped_owned.
Print Assumptions s2_exclusive.
Print Assumptions s2_functional.
Print Assumptions reclaim_zeroes.
Print Assumptions reclaim_unmaps.
Print Assumptions reclaim_failed_page_stays.
Print Assumptions reclaim_complete.
Print Assumptions guest_data_confined.
Print Assumptions guest_data_reaches_only_sharer.
Print Assumptions mapped_page_holds_no_other_guest_data.
Print Assumptions donate_revokes_control.
Print Assumptions control_access_gained_only_by.
Print Assumptions integrity.
Print Assumptions control_cannot_touch_guest_pages.
Print Assumptions low_equiv_step.
Print Assumptions noninterference.
