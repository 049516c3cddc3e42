#!/usr/bin/env bash
# Three peered gateways on loopback — gw-nl, gw-fr, gw-ie, each with its own development PKI
# and store in a temporary directory — then a takedown notice from customs-nl@gw-nl to
# market-a@gw-ie, the platform's outcome back, and gw-nl's checkpoint with its two peers'
# cosignature lines, each step printed. Stops the gateways (SIGTERM) and exits 0.
#
#   bash examples/federation/run.sh
#
# Uses the binaries in $IPEX_BIN (a directory holding ipexd and ipex) when set, otherwise
# builds them (cargo build --release). Needs python3 (to edit JSON).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [[ -n "${IPEX_BIN:-}" ]]; then
  bin="$(cd "$IPEX_BIN" && pwd)"
else
  echo "building ipexd and ipex (release)"
  (cd "$root" && cargo build --release --locked --bins --quiet)
  target_dir="${CARGO_TARGET_DIR:-target}"
  [[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
  bin="$target_dir/release"
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/ipex-federation.XXXXXX")"
gateways=(gw-nl gw-fr gw-ie)
declare -A pid port

cleanup() {
  for gw in "${gateways[@]}"; do
    if [[ -n "${pid[$gw]:-}" ]]; then kill -TERM "${pid[$gw]}" 2>/dev/null || true; fi
  done
  for gw in "${gateways[@]}"; do
    if [[ -n "${pid[$gw]:-}" ]]; then wait "${pid[$gw]}" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
# A free port below the ephemeral range, so that no outgoing connection takes it meanwhile.
free_port() {
  python3 -c 'import socket,random
while True:
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass
    finally: s.close()'
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# One line per message of an inbox page.
show_inbox() {
  python3 -c '
import json, sys
for m in json.load(sys.stdin).get("messages", []):
    e = m["envelope"]
    print("  inbox #" + str(m["inboxNo"]) + ": " + e["kind"] + " " + e["id"] + " from " + e["sender"])
'
}
# ipex as a participant of a gateway: ipex_at GW PARTICIPANT ARGS...
ipex_at() {
  local gw="$1" who="$2"
  shift 2
  (cd "$work/$gw" && "$bin/ipex" --gateway "https://127.0.0.1:${port[$gw]}" --as "$who" "$@")
}

step "each gateway gets a development PKI, a checkpoint key, a gateway certificate and a witness key"
for gw in "${gateways[@]}"; do
  mkdir -p "$work/$gw"
  (cd "$work/$gw" && "$bin/ipex" certs init --gateway-id "$gw" > peer.json)
  port[$gw]="$(free_port)"
  echo "$gw: https://127.0.0.1:${port[$gw]}, witness key $(json 'd["peer"]["witness_key"]' < "$work/$gw/peer.json")"
done
# Who each gateway opens to its peers.
open_to_peers() {
  python3 - "$work/$1/certs/dev/registry.toml" "$2" <<'EOF'
import sys
path, pid = sys.argv[1], sys.argv[2]
text = open(path).read()
line = f'id = "{pid}"\n'
open(path, "w").write(text.replace(line, line + "open_to_peers = true\n", 1))
EOF
}
open_to_peers gw-nl customs-nl
open_to_peers gw-fr customs-fr
open_to_peers gw-ie market-a

for gw in "${gateways[@]}"; do
  {
    cat <<EOF
dev_mode = true
gateway_id = "$gw"
registry = "certs/dev/registry.toml"
listen = "127.0.0.1:${port[$gw]}"

[tls]
cert = "certs/dev/server.pem"
key = "certs/dev/server.key"
client_ca = "certs/dev/ca.pem"

[audit]
signing_key = "certs/dev/audit.key"
checkpoint_interval_ms = 200

[federation]
cosign_interval_ms = 200
EOF
    for peer in "${gateways[@]}"; do
      [[ "$peer" == "$gw" ]] && continue
      python3 - "$work/$peer/peer.json" "$work/$peer" "${port[$peer]}" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))["peer"]
print(f'''
[[peers]]
id = "{p["id"]}"
address = "https://127.0.0.1:{sys.argv[3]}"
ca = "{sys.argv[2]}/{p["ca"]}"
checkpoint_key = "{p["checkpoint_key"]}"
witness_key = "{p["witness_key"]}"''')
EOF
    done
  } > "$work/$gw/ipexd.toml"
done

step "three gateways start, peered with each other"
for gw in "${gateways[@]}"; do
  (cd "$work/$gw" && exec "$bin/ipexd" --config ipexd.toml > ipexd.log 2>&1) &
  pid[$gw]=$!
done
for gw in "${gateways[@]}"; do
  for _ in $(seq 1 100); do
    ipex_at "$gw" customs-nl health > /dev/null 2>&1 && break
    sleep 0.1
  done
  echo "$gw is serving"
done
for _ in $(seq 1 100); do
  ipex_at gw-nl customs-nl participants | grep -q '"market-a@gw-ie"' && break
  sleep 0.1
done
echo "gw-nl lists the participants its peers publish:"
ipex_at gw-nl customs-nl participants | json '"\n".join("  " + p["id"] for p in d["participants"] if "@" in p["id"])'

step "customs-nl@gw-nl sends a takedown notice to market-a@gw-ie"
python3 - "$root/examples/messages/takedown-notice.json" "$work/notice.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
e["id"] = "fed-notice-1"
e["recipients"] = ["market-a@gw-ie"]
n = e["takedownNotice"]
n["platform"] = "market-a@gw-ie"
if "seller" in n:
    n["seller"]["platform"] = "market-a@gw-ie"
json.dump(e, open(sys.argv[2], "w"))
EOF
seq="$(ipex_at gw-nl customs-nl submit "$work/notice.json" | json 'd["receipt"]["seq"] if "receipt" in d else d["receipts"][0]["seq"]')"
echo "stored at gw-nl as seq $seq"
for _ in $(seq 1 100); do
  state="$(ipex_at gw-nl customs-nl get --seq "$seq" | json 'd.get("forwarding", [{}])[0].get("state", "")')"
  [[ "$state" == "FORWARDING_STATE_DELIVERED" ]] && break
  sleep 0.1
done
ipex_at gw-nl customs-nl get --seq "$seq" | json 'json.dumps(d["forwarding"], indent=2)'

step "market-a@gw-ie finds it in its inbox"
ipex_at gw-ie market-a inbox | show_inbox

step "market-a answers with a takedown outcome, addressed to customs-nl@gw-nl"
python3 - "$root/examples/messages/takedown-outcome.json" "$work/outcome.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
e["id"] = "fed-outcome-1"
e["recipients"] = ["customs-nl@gw-nl"]
e["refs"] = [{"sender": "customs-nl@gw-nl", "id": "fed-notice-1"}]
json.dump(e, open(sys.argv[2], "w"))
EOF
ipex_at gw-ie market-a submit "$work/outcome.json" > /dev/null
for _ in $(seq 1 100); do
  ipex_at gw-nl customs-nl inbox | grep -q '"fed-outcome-1"' && break
  sleep 0.1
done
echo "customs-nl's inbox at gw-nl:"
ipex_at gw-nl customs-nl inbox | show_inbox

step "gw-nl's checkpoint, cosigned by its two peers as witnesses"
for _ in $(seq 1 100); do
  n="$(ipex_at gw-nl customs-nl audit checkpoint --witnessed | json 'd.get("cosignatures", 0)')"
  [[ "$n" == "2" ]] && break
  sleep 0.1
done
ipex_at gw-nl customs-nl audit checkpoint --witnessed | json 'd["checkpoint"]'
json 'd["peer"]["witness_key"]' < "$work/gw-fr/peer.json" > "$work/fr.vkey"
json 'd["peer"]["witness_key"]' < "$work/gw-ie/peer.json" > "$work/ie.vkey"
ipex_at gw-nl customs-nl audit verify --state "$work/state.json" \
  --verifier-key "$(json 'd["peer"]["checkpoint_key"]' < "$work/gw-nl/peer.json")" \
  --witness "$work/fr.vkey" --witness "$work/ie.vkey" --quorum 2 |
  json '"verified: " + str(d["verified"]) + ", tree size " + d["treeSize"] + ", cosigned by " + ", ".join(d["cosignedBy"])'

step "the gateways stop"
cleanup
trap - EXIT
echo "done"
