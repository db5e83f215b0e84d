#!/usr/bin/env bash
# Writes the container's secrets into DIR (default ./secrets), one file each, as
# docker-compose.yml and docs/operations.md name them: pai_mac_keys (`default:<base64 of 32
# random bytes>`), pai_password_pepper, pai_ledger_key, mysql_password and pai_database_url (for
# the compose file's MySQL). Existing files are kept: a new pepper would lock every user out, a
# new ledger key would make every sealed block fail verification.
#
# Readable by the image's user (uid 1000) and nobody else: run as root, the files are given to
# uid 1000 (mode 0400, folder 0700); run as uid 1000, they are that user's anyway; run as another
# user (whose files a container's uid 1000 cannot read), the folder is 0711 and the files 0644,
# and a line says so. Nothing is printed but the file names.
set -euo pipefail
dir=${1:-secrets}
image_uid=${PAI_IMAGE_UID:-1000}
umask 077
mkdir -p "$dir"

random_base64() { head -c 32 /dev/urandom | base64 | tr -d '\n'; }
write() { # name, value: only when the file is absent
  if [[ -e "$dir/$1" ]]; then
    echo "kept    $dir/$1"
  else
    printf '%s\n' "$2" >"$dir/$1"
    echo "wrote   $dir/$1"
  fi
}

write pai_mac_keys "default:$(random_base64)"
write pai_password_pepper "$(random_base64)"
write pai_ledger_key "$(random_base64)"
write mysql_password "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
write pai_database_url "mysql://pai:$(cat "$dir/mysql_password")@mysql:3306/pai_1"

if [[ $(id -u) -eq 0 ]]; then
  chown -R "$image_uid:$image_uid" "$dir"
  chmod 0700 "$dir"
  chmod 0400 "$dir"/*
elif [[ $(id -u) -eq $image_uid ]]; then
  chmod 0700 "$dir"
  chmod 0400 "$dir"/*
else
  chmod 0711 "$dir"
  chmod 0644 "$dir"/*
  echo "note: you are uid $(id -u), the image's user is uid $image_uid: the files are readable by others on this machine (folder 0711); run as root to give them to uid $image_uid instead"
fi
