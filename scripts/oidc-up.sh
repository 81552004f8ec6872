#!/usr/bin/env bash
# Start a real OpenID Connect provider on 127.0.0.1 for aifkit's hub tests: Debian's glewlwyd
# (one C daemon, SQLite, its own login page), installed when missing. Run as root.
# Idempotent: a running provider is left running; its client, users and groups are (re)set.
# Stop it with scripts/oidc-down.sh.
#
# What it sets up (through glewlwyd's admin REST API):
#   issuer     http://127.0.0.1:$OIDC_PORT/api/oidc  (discovery: <issuer>/.well-known/openid-configuration)
#   client     aifkit-hub (confidential, code flow), secret in $OIDC_BASE/client_secret;
#              its redirect URIs are added by the tests (hub ports are random) and kept here
#   scopes     openid, profile (preferred_username), email, groups (the "groups" claim)
#   users      lena (aifkit-learners), ines (aifkit-instructors), otto (no group),
#              mia (aifkit-learners); each with e-mail <name>@factory.example, password in
#              $OIDC_BASE/user_password; consent to the client is granted in advance
#   admin      glewlwyd's admin user, its password random in $OIDC_BASE/admin_password
#
#   OIDC_BASE  database, keys, config, log, pid        (default /tmp/aifkit-oidc)
#   OIDC_PORT  TCP port on 127.0.0.1                    (default 54593)
set -euo pipefail
BASE=${OIDC_BASE:-/tmp/aifkit-oidc}
PORT=${OIDC_PORT:-54593}
URL=http://127.0.0.1:$PORT
API=$URL/api
CLIENT=aifkit-hub
DB=$BASE/glewlwyd.db
CONF=$BASE/glewlwyd.conf
LOG=$BASE/glewlwyd.log
PIDFILE=$BASE/glewlwyd.pid
SCHEMA=/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3
WEBAPP=/usr/share/glewlwyd/webapp
DEFAULT_ADMIN_PASSWORD=password  # what glewlwyd's schema ships; replaced at the first start
# user:groups (comma-separated, may be empty)
USERS=(lena:aifkit-learners ines:aifkit-instructors otto: mia:aifkit-learners)

if [ "$(id -u)" != 0 ]; then echo "oidc-up: run as root (it installs glewlwyd when missing)" >&2; exit 2; fi

missing=""
for tool in glewlwyd sqlite3 jq curl openssl; do
  command -v "$tool" >/dev/null || missing=1
done
if [ -n "$missing" ] || [ ! -f "$SCHEMA" ] || [ ! -d "$WEBAPP" ]; then
  echo "oidc-up: installing Debian's glewlwyd, sqlite3, jq, curl, openssl" >&2
  # No systemd here: a policy-rc.d that answers 101 keeps the packaged service from starting.
  POLICY=/usr/sbin/policy-rc.d
  made_policy=""
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$POLICY" && chmod 0755 "$POLICY" && made_policy=1
    trap 'rm -f "$POLICY"' EXIT
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    glewlwyd sqlite3 jq curl openssl >/dev/null
  if [ -n "$made_policy" ]; then rm -f "$POLICY"; trap - EXIT; fi
fi

install -d -m 0700 "$BASE"
cd "$BASE"

# Secrets: made once, mode 600, kept across restarts (the tests read them as root).
secret() {  # secret FILE: print the file's value, making a random one first if needed
  if [ ! -s "$1" ]; then (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$1"); fi
  cat "$1"
}
ADMIN_PASSWORD=$(secret "$BASE/admin_password")
CLIENT_SECRET=$(secret "$BASE/client_secret")
USER_PASSWORD=$(secret "$BASE/user_password")

if [ ! -s "$BASE/signing-key.pem" ]; then  # RS256: the id_token's signature, published as JWKS
  (umask 077; openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$BASE/signing-key.pem" 2>/dev/null)
  openssl pkey -in "$BASE/signing-key.pem" -pubout -out "$BASE/signing-cert.pem"
fi

# glewlwyd serves its login page from a folder of static files, but follows no symbolic link,
# and Debian's webapp links to jquery, bootstrap, the fonts and its config: a real copy.
if [ ! -s "$BASE/webapp/login.html" ]; then
  rm -rf "$BASE/webapp.new"
  cp -rL "$WEBAPP" "$BASE/webapp.new"
  # the pages' settings: the package's template (its /etc copy is not a plain file everywhere)
  rm -rf "$BASE/webapp.new/config.json"
  cp /usr/share/glewlwyd/templates/config.json "$BASE/webapp.new/config.json"
  rm -rf "$BASE/webapp"
  mv "$BASE/webapp.new" "$BASE/webapp"
fi

if [ ! -s "$DB" ]; then
  sqlite3 "$DB" < "$SCHEMA"
  chmod 600 "$DB"
fi

cat > "$CONF" <<CONF
# written by scripts/oidc-up.sh
port=$PORT
bind_address="127.0.0.1"
external_url="$URL"
login_url="login.html"
api_prefix="api"
static_files_path="$BASE/webapp/"
allow_origin="$URL"
log_mode="file"
log_level="INFO"
log_file="$LOG"
cookie_secure=0
cookie_same_site="lax"
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=false
login_api_enabled=true
add_x_frame_option_header_deny=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="/usr/lib/glewlwyd/user"
client_module_path="/usr/lib/glewlwyd/client"
user_auth_scheme_module_path="/usr/lib/glewlwyd/scheme"
plugin_module_path="/usr/lib/glewlwyd/plugin"
hash_algorithm="SHA512"
database = { type = "sqlite3"; path = "$DB"; };
static_files_mime_types = (
  { extension = ".html"; mime_type = "text/html"; },
  { extension = ".css"; mime_type = "text/css"; },
  { extension = ".js"; mime_type = "application/javascript"; },
  { extension = ".json"; mime_type = "application/json"; },
  { extension = ".png"; mime_type = "image/png"; },
  { extension = ".ico"; mime_type = "image/x-icon"; },
  { extension = ".svg"; mime_type = "image/svg+xml"; },
  { extension = ".ttf"; mime_type = "font/ttf"; },
  { extension = ".woff"; mime_type = "font/woff"; },
  { extension = ".woff2"; mime_type = "font/woff2"; },
  { extension = ".eot"; mime_type = "application/vnd.ms-fontobject"; }
);
CONF
chmod 600 "$CONF"

answers() { curl -s -o /dev/null --max-time 3 "$API/" ; }
running() { [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

if running; then
  echo "oidc-up: already running (pid $(cat "$PIDFILE"))" >&2
elif answers; then
  echo "oidc-up: something else already answers on 127.0.0.1:$PORT; set OIDC_PORT" >&2
  exit 1
else
  setsid glewlwyd --config-file="$CONF" >>"$BASE/stdout.log" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  deadline=$((SECONDS + 30))
  until answers; do
    if ! running || [ "$SECONDS" -ge "$deadline" ]; then
      echo "oidc-up: glewlwyd did not answer on $API; last log lines:" >&2
      tail -n 20 "$LOG" "$BASE/stdout.log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
fi

# ---------------------------------------------------------------- configuration by the admin API
JAR=$(mktemp "$BASE/admin-cookies.XXXXXX")
trap 'rm -f "$JAR"' EXIT

call() {  # call METHOD PATH [JSON]: the admin API; fails loudly on HTTP >= 400
  local method=$1 path=$2 body=${3:-} out code
  out=$(mktemp "$BASE/answer.XXXXXX")
  code=$(curl -s -o "$out" -w '%{http_code}' --max-time 15 -b "$JAR" -c "$JAR" -X "$method" \
    -H 'Content-Type: application/json' ${body:+--data "$body"} "$API$path")
  if [ "$code" -ge 400 ] || [ "$code" = 000 ]; then
    echo "oidc-up: $method $path answered $code: $(head -c 500 "$out")" >&2
    rm -f "$out"
    return 1
  fi
  cat "$out"
  rm -f "$out"
}
exists() { curl -s -o /dev/null -w '%{http_code}' --max-time 15 -b "$JAR" "$API$1" | grep -q '^200$'; }

login() {  # login USER PASSWORD: a session cookie in $JAR
  call POST /auth/ "$(jq -nc --arg u "$1" --arg p "$2" '{username: $u, password: $p}')" >/dev/null
}
if ! login admin "$ADMIN_PASSWORD" 2>/dev/null; then
  login admin "$DEFAULT_ADMIN_PASSWORD"  # first start: replace the shipped password
  # only the password: glewlwyd keeps the admin's name and scopes
  call PUT /user/admin "$(jq -nc --arg p "$ADMIN_PASSWORD" '{password: $p}')" >/dev/null
  : > "$JAR"
  login admin "$ADMIN_PASSWORD"
fi

put_or_post() {  # put_or_post COLLECTION NAME JSON: create or replace one object
  if exists "$1/$2"; then call PUT "$1/$2" "$3" >/dev/null; else call POST "$1/" "$3" >/dev/null; fi
}

# The user database keeps a multi-valued "groups" property (the provider's group memberships).
call PUT /mod/user/database "$(jq -nc '{
  module: "database", name: "database", display_name: "Database backend", order: 0,
  readonly: false, multiple_passwords: false, enabled: true,
  parameters: {"use-glewlwyd-connection": true, "data-format": {
    groups: {multiple: true, read: true, write: true, "profile-read": true, "profile-write": false}}}
}')" >/dev/null
call PUT /mod/user/database/reset >/dev/null  # the running module picks up the new format

for scope in openid profile email groups; do
  put_or_post /scope "$scope" "$(jq -nc --arg s "$scope" \
    '{name: $s, display_name: $s, description: "OpenID Connect scope \($s)",
      password_required: true, password_max_age: 0, scheme: {}}')"
done

KEY=$(cat "$BASE/signing-key.pem")
CERT=$(cat "$BASE/signing-cert.pem")
put_or_post /mod/plugin oidc "$(jq -nc --arg iss "$API/oidc" --arg key "$KEY" --arg cert "$CERT" '{
  module: "oidc", name: "oidc", display_name: "OpenID Connect", enabled: true,
  parameters: {
    iss: $iss, "jwt-type": "rsa", "jwt-key-size": "256", key: $key, cert: $cert,
    "access-token-duration": 3600, "refresh-token-duration": 86400, "code-duration": 600,
    "refresh-token-rolling": true, "allow-non-oidc": false,
    "auth-type-code-enabled": true, "auth-type-token-enabled": false,
    "auth-type-id-token-enabled": true, "auth-type-none-enabled": false,
    "auth-type-password-enabled": false, "auth-type-client-enabled": false,
    "auth-type-device-enabled": false, "auth-type-refresh-enabled": true,
    "subject-type": "public", "jwks-show": true, "discovery-enabled": true,
    "allowed-scope": ["openid", "profile", "email", "groups"], "additional-parameters": [],
    "name-claim": "on-demand", "email-claim": "mandatory", "scope-claim": "no",
    "address-claim": {type: "no"},
    "claims": [
      {name: "preferred_username", "user-property": "username", type: "string",
       mandatory: false, "on-demand": false, scope: ["profile"]},
      {name: "groups", "user-property": "groups", type: "string",
       mandatory: false, "on-demand": false, scope: ["groups"]}
    ],
    "pkce-allowed": true, "pkce-method-plain-allowed": false,
    "session-management-allowed": true, "session-cookie-name": "GLEWLWYD_OIDC_SESSION",
    "session-cookie-expiration": 3600,
    "request-parameter-allow": false, "client-pubkey-parameter": ""
  }
}')"
call PUT /mod/plugin/oidc/reset >/dev/null  # a running instance reloads its parameters

# The redirect URIs the tests registered (each hub has its own port) are kept.
REDIRECTS='["http://127.0.0.1/hub/oauth_callback"]'
if exists "/client/$CLIENT"; then REDIRECTS=$(call GET "/client/$CLIENT" | jq -c '.redirect_uri'); fi
put_or_post /client "$CLIENT" "$(jq -nc --arg id "$CLIENT" --arg secret "$CLIENT_SECRET" \
  --argjson redirects "$REDIRECTS" '{
  client_id: $id, name: "aifkit hub", description: "JupyterHub of the AI factory (tests)",
  confidential: true, enabled: true, password: $secret,
  redirect_uri: $redirects,
  authorization_type: ["code", "refresh_token"],
  token_endpoint_auth_method: ["client_secret_basic", "client_secret_post"],
  scope: []
}')"

for entry in "${USERS[@]}"; do
  name=${entry%%:*} groups=${entry#*:}
  put_or_post /user "$name" "$(jq -nc --arg u "$name" --arg p "$USER_PASSWORD" --arg g "$groups" '{
    username: $u, name: ($u | ascii_upcase), email: "\($u)@factory.example", enabled: true,
    password: $p, scope: ["openid", "profile", "email", "groups"],
    groups: ($g | split(",") | map(select(. != "")))
  }')"
done

# Each user consents to the client once, here, so that the login page asks for the password only.
ADMIN_JAR=$JAR
for entry in "${USERS[@]}"; do
  JAR=$(mktemp "$BASE/user-cookies.XXXXXX")
  login "${entry%%:*}" "$USER_PASSWORD"
  call PUT "/auth/grant/$CLIENT" '{"scope": "openid profile email groups"}' >/dev/null
  rm -f "$JAR"
done
JAR=$ADMIN_JAR

echo "oidc-up: glewlwyd ready on $URL (issuer $API/oidc, log $LOG)" >&2
echo "$API/oidc"
