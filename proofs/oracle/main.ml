(* The oracle: reads a trace of ledger operations on standard input, runs
   each through the model extracted from proofs/coq/Model.v, and prints one
   line per input line (the result, or the state for "dump"). Only parsing
   and printing are written here; every transition is the extracted [step].

   Input lines (numbers in decimal; '#' starts a comment line):
     init BASE NPAGES IPABITS      boot state (all free)
     save K | load K               snapshot / restore the state under key K
     assign PA SIZE TO | donate PA SIZE TO
     donatemap PA IPA SIZE TO PERM
     share PA SIZE G | unshare PA SIZE G | reclaim G
     setfail PA 0|1 | write C PA | read C PA | gwrite G IPA | gread G IPA
     dump K        pages as owner,borrower,zfail,writers,access-bits for
                   compartments 0..K-1, then the ledger check
     maps          every stage 2 translation, sorted
   Output: "-" for init/save/load; "ok"; "err NAME"; "reclaim N";
   "reclaim N err NAME"; "data W1+W2" ("data -" when zeroed); "state ...". *)

open Model

let rec pos_of_int i =
  if i = 1 then XH
  else if i land 1 = 0 then XO (pos_of_int (i lsr 1))
  else XI (pos_of_int (i lsr 1))

let n_of_int i = if i = 0 then N0 else Npos (pos_of_int i)
let ten = n_of_int 10

(* Decimal strings of any length (uint64 values exceed OCaml's int): up to
   18 digits through OCaml's int (exact: below 2^62), longer ones digit by
   digit in N. *)
let n_of_string s =
  if s = "" then failwith "empty number";
  String.iter (fun c -> if c < '0' || c > '9' then failwith ("bad number " ^ s)) s;
  if String.length s <= 18 then n_of_int (int_of_string s)
  else begin
    let acc = ref N0 in
    String.iter
      (fun c -> acc := N.add (N.mul !acc ten) (n_of_int (Char.code c - 48)))
      s;
    !acc
  end

let rec int_of_pos = function
  | XH -> 1
  | XO p -> 2 * int_of_pos p
  | XI p -> (2 * int_of_pos p) + 1

(* The number of bits of a positive. *)
let rec pos_bits = function XH -> 1 | XO p | XI p -> 1 + pos_bits p

(* Below 2^62 through OCaml's int, above it by division in N. *)
let rec string_of_n = function
  | N0 -> "0"
  | Npos p when pos_bits p <= 62 -> string_of_int (int_of_pos p)
  | n ->
      let q = N.div n ten and r = N.modulo n ten in
      let d = match r with N0 -> 0 | Npos p -> int_of_pos p in
      (if q = N0 then "" else string_of_n q) ^ string_of_int d

let rec nat_of_int i = if i <= 0 then O else S (nat_of_int (i - 1))
let rec int_of_nat = function O -> 0 | S n -> 1 + int_of_nat n

let err_name = function
  | ERange -> "range"
  | ENotOwner -> "notowner"
  | EShared -> "shared"
  | ENotShared -> "notshared"
  | EBadOwner -> "badowner"
  | ENotFree -> "notfree"
  | EDirtyReturn -> "dirty"
  | EIPARange -> "iparange"
  | EDenied -> "denied"

let writers = function
  | [] -> "-"
  | l -> String.concat "+" (List.map string_of_n l)

let string_of_result = function
  | ROk -> "ok"
  | RErr e -> "err " ^ err_name e
  | RReclaim (n, None) -> "reclaim " ^ string_of_int (int_of_nat n)
  | RReclaim (n, Some e) ->
      "reclaim " ^ string_of_int (int_of_nat n) ^ " err " ^ err_name e
  | RData d -> "data " ^ writers d

let dump st k =
  let pages =
    List.mapi
      (fun i x ->
        let bits =
          String.init k (fun c ->
              if acc st (n_of_int c) (nat_of_int i) then '1' else '0')
        in
        Printf.sprintf "%s,%s,%d,%s,%s" (string_of_n x.s_owner)
          (string_of_n x.s_borrower)
          (if x.s_zfail then 1 else 0)
          (writers x.s_data) bits)
      st.slots
  in
  "state " ^ String.concat ";" pages ^ ";check=" ^ (if check st then "1" else "0")

let maps st =
  let l =
    List.map
      (fun m ->
        Printf.sprintf "%s:%s>%d/%s" (string_of_n m.m_vm) (string_of_n m.m_ipa)
          (int_of_nat m.m_pa) (string_of_n m.m_perm))
      st.s2
  in
  "maps " ^ String.concat " " (List.sort compare l)

let () =
  let st = ref (boot N0 O N0) in
  let saved = Hashtbl.create 1024 in
  let lineno = ref 0 in
  let out = Buffer.create 65536 in
  let flush_out () =
    print_string (Buffer.contents out);
    Buffer.clear out
  in
  let emit s =
    Buffer.add_string out s;
    Buffer.add_char out '\n';
    if Buffer.length out > 60000 then flush_out ()
  in
  let run o =
    let s', r = step !st o in
    st := s';
    emit (string_of_result r)
  in
  (try
     while true do
       let line = input_line stdin in
       incr lineno;
       let w = List.filter (fun s -> s <> "") (String.split_on_char ' ' (String.trim line)) in
       let n = n_of_string in
       match w with
       | [] -> ()
       | c :: _ when c.[0] = '#' -> ()
       | [ "init"; b; np; ib ] ->
           st := boot (n b) (nat_of_int (int_of_string np)) (n ib);
           emit "-"
       | [ "save"; k ] -> Hashtbl.replace saved k !st; emit "-"
       | [ "load"; k ] -> st := Hashtbl.find saved k; emit "-"
       | [ "assign"; pa; sz; t ] -> run (Assign (n pa, n sz, n t))
       | [ "donate"; pa; sz; t ] -> run (Donate (n pa, n sz, n t))
       | [ "donatemap"; pa; ipa; sz; t; p ] ->
           run (DonateMap (n pa, n ipa, n sz, n t, n p))
       | [ "share"; pa; sz; g ] -> run (Share (n pa, n sz, n g))
       | [ "unshare"; pa; sz; g ] -> run (Unshare (n pa, n sz, n g))
       | [ "reclaim"; g ] -> run (Reclaim (n g))
       | [ "setfail"; pa; b ] -> run (SetFail (n pa, b = "1"))
       | [ "write"; c; pa ] -> run (Write (n c, n pa))
       | [ "read"; c; pa ] -> run (Read (n c, n pa))
       | [ "gwrite"; g; ipa ] -> run (GWrite (n g, n ipa))
       | [ "gread"; g; ipa ] -> run (GRead (n g, n ipa))
       | [ "dump"; k ] -> emit (dump !st (int_of_string k))
       | [ "maps" ] -> emit (maps !st)
       | _ -> failwith "unknown command"
     done
   with
  | End_of_file -> ()
  | Failure m | Invalid_argument m ->
      flush_out ();
      Printf.eprintf "oracle: line %d: %s\n" !lineno m;
      exit 2
  | Not_found ->
      flush_out ();
      Printf.eprintf "oracle: line %d: no such snapshot\n" !lineno;
      exit 2);
  flush_out ()
