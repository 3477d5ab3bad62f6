#!/usr/bin/env bash
# Create a private CA and a SuperLink server certificate signed by it (openssl).
#
#   bash simulations/deploy/certs.sh DIR [HOST_OR_IP ...]
#
# The certificate's subjectAltName always holds DNS:localhost and IP:127.0.0.1 (the one-machine
# deployment) plus every extra HOST_OR_IP given (the address SuperNodes and `flwr` dial on
# another machine: a name becomes DNS:, an IPv4/IPv6 address IP:). TLS checks the SAN, not the
# CN, so a SuperNode dialing an address missing here fails the handshake.
# Writes DIR/ca.crt (give it to every SuperNode and to `flwr`: root-certificates),
# DIR/ca.key (keep it offline), DIR/server.crt + DIR/server.key (the SuperLink's).
set -euo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: $0 DIR [HOST_OR_IP ...]" >&2
  exit 2
fi
dir=$1
shift
mkdir -p "$dir"
umask 077  # private keys readable by their owner only

san="DNS:localhost,IP:127.0.0.1"
for host in "$@"; do
  if [[ $host =~ ^[0-9]+(\.[0-9]+){3}$ || $host == *:* ]]; then
    san+=",IP:$host"
  else
    san+=",DNS:$host"
  fi
done

days=${FEDLITE_CERT_DAYS:-365}
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" -days "$days" -subj "/CN=fedlite-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=fedlite-superlink" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
  "$san" >"$dir/server.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
  -CAcreateserial -out "$dir/server.crt" -days "$days" -extfile "$dir/server.ext" 2>/dev/null
rm -f "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl"
chmod 644 "$dir/ca.crt" "$dir/server.crt"
echo "certificates in $dir (SAN: $san)"
