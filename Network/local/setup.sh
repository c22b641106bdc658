#!/usr/bin/env bash
# Creates the local network once: a key pair per member, the genesis file, and one node
# config per member in $CREDITLEDGER_LOCAL_DIR. Does nothing if the genesis already exists.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
source Network/local/network.env
bin="$(swift build -c "$CREDITLEDGER_BUILD" --show-bin-path)/credit-node"
dir="$CREDITLEDGER_LOCAL_DIR"
if [ -f "$dir/genesis.json" ]; then exit 0; fi
if [ -e "$dir" ]; then
  echo "error: $dir exists without a genesis.json (a network made by hand, or half removed); move it away first" >&2
  exit 1
fi
rm -rf "$dir.creating"
mkdir -p "$dir.creating"
mkdir -m 700 "$dir.creating/keys"   # secret keys: nobody else lists or reads them
for m in $CREDITLEDGER_LOCAL_MEMBERS; do
  "$bin" keygen --member "$m" --out "$dir.creating/keys" >/dev/null
done
"$bin" genesis --members "$CREDITLEDGER_LOCAL_MEMBERS_FILE" --keys-dir "$dir.creating/keys" --out "$dir.creating/genesis.json" >/dev/null
i=1
for m in $CREDITLEDGER_LOCAL_MEMBERS; do
  mkdir -p "$dir.creating/$m"
  cat >"$dir.creating/$m/node.json" <<JSON
{
  "genesis": "../genesis.json",
  "key": "../keys/$m.key",
  "data_dir": "data",
  "http": "127.0.0.1:860$i",
  "member_http": "127.0.0.1:861$i",
  "p2p": "127.0.0.1:2660$i",
  "log_level": "info"
}
JSON
  i=$((i + 1))
done
mv "$dir.creating" "$dir"
echo "created the local network in $dir: genesis $(sha256sum "$dir/genesis.json" | cut -c1-16)…, members: $CREDITLEDGER_LOCAL_MEMBERS"
