#!/bin/sh
# Install the packages listed in $1 that are not installed yet, fix locale and time zone, and trim
# what the image never reads. On the debootstrapped base (which already has every package and was
# put through this script) it needs no network.
set -eu

# Like Debian's slim images: no docs (but their copyright files), man pages or translations,
# neither now nor for packages installed later.
cat >/etc/dpkg/dpkg.cfg.d/hlsflow-slim <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG

# Parts of g++ and binutils that hls4ml's `g++ -O3 -fPIC -shared` build (and Vivado HLS csim) never
# runs, kept out of later installs too and deleted below: the link-time optimiser (-flto only), the
# sanitizer runtimes (-fsanitize only), the static C, math and C++ libraries (-static only; a shared
# link takes libc.so, libm.so, libstdc++.so and the small libc_nonshared.a/libgcc.a, which stay)
# and the gprofng profiler.
NEVER_RUN="/usr/lib/gcc/x86_64-linux-gnu/*/lto1
/usr/lib/gcc/x86_64-linux-gnu/*/lib*san*
/usr/lib/x86_64-linux-gnu/libasan.so*
/usr/lib/x86_64-linux-gnu/libhwasan.so*
/usr/lib/x86_64-linux-gnu/liblsan.so*
/usr/lib/x86_64-linux-gnu/libtsan.so*
/usr/lib/x86_64-linux-gnu/libubsan.so*
/usr/lib/x86_64-linux-gnu/libc.a
/usr/lib/x86_64-linux-gnu/libm.a
/usr/lib/x86_64-linux-gnu/libm-*.a
/usr/lib/x86_64-linux-gnu/libmvec.a
/usr/lib/gcc/x86_64-linux-gnu/*/libstdc++.a
/usr/lib/x86_64-linux-gnu/libgprofng.so*
/usr/lib/x86_64-linux-gnu/gprofng
/usr/bin/*gprofng*
/usr/bin/*gp-*
/etc/gprofng.rc"
for path in $NEVER_RUN; do echo "path-exclude $path"; done >/etc/dpkg/dpkg.cfg.d/hlsflow-never-run

missing=""
for pkg in $(sed 's/#.*//' "$1"); do
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
    echo 'en_US.UTF-8 UTF-8' >/etc/locale.gen
    locale-gen
fi
ln -sf /usr/share/zoneinfo/UTC /etc/localtime
echo UTC >/etc/timezone

# The trim only shrinks the image in the layer that installed the files: the same RUN here.
find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf /usr/share/man/* /usr/share/info/*
# GCC's link-time-optimisation object dumper: 31 MB that no flow step runs.
rm -f /usr/bin/*lto-dump*
# The unquoted list expands its globs here.
rm -rf $NEVER_RUN
# The locale sources: en_US.UTF-8 is generated above, and the image has no other locale.
rm -rf /usr/share/i18n
