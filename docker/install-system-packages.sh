#!/bin/sh
# Install the packages listed in $1 that are not installed yet, then fix locale and time zone.
# On the debootstrapped base (which has every package already) this needs no network.
set -eu

list="$1"
missing=""
for pkg in $(sed 's/#.*//' "$list"); do
    # dpkg-query, not `dpkg -s`: a removed package with leftover config files is not installed.
    if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)" != "ii " ]; then
        missing="$missing $pkg"
    fi
done

if [ -n "$missing" ]; then
    echo "install-system-packages: installing$missing"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
else
    echo "install-system-packages: all packages already installed"
fi
apt-get clean
rm -rf /var/lib/apt/lists/*

# en_US.UTF-8 only: tools print the same messages and number formats on every machine.
if ! locale -a | grep -qx 'en_US.utf8'; then
    echo 'en_US.UTF-8 UTF-8' > /etc/locale.gen
    locale-gen
fi

ln -sf /usr/share/zoneinfo/UTC /etc/localtime
echo UTC > /etc/timezone
