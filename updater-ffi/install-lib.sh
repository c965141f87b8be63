#!/bin/sh
# Installs a built libabupdater.so as a C library under DESTDIR: the library under its full
# version with the soname link (runtime) and the plain .so link (development), the header and a
# pkg-config file. The Yocto recipe and tests/c_api.rs both use it, so the tested layout is the
# shipped one.
# usage: install-lib.sh LIBRARY VERSION DESTDIR PREFIX LIBDIR INCLUDEDIR
set -eu
if [ $# -ne 6 ]; then
  echo "usage: $0 LIBRARY VERSION DESTDIR PREFIX LIBDIR INCLUDEDIR" >&2
  exit 2
fi
library=$1 version=$2 destdir=$3 prefix=$4 libdir=$5 includedir=$6
here=$(dirname "$0")
# The soname is set once, by build.rs; read it back rather than repeating it here.
soname=$(${READELF:-readelf} -d "$library" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ -z "$soname" ]; then
  echo "install-lib.sh: $library has no SONAME (not built by updater-ffi's build.rs?)" >&2
  exit 1
fi
real=libabupdater.so.$version
install -d "$destdir$libdir/pkgconfig" "$destdir$includedir"
install -m 0755 "$library" "$destdir$libdir/$real"
ln -sf "$real" "$destdir$libdir/$soname"
ln -sf "$soname" "$destdir$libdir/libabupdater.so"
install -m 0644 "$here/include/abupdater.h" "$destdir$includedir/abupdater.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@LIBDIR@|$libdir|" -e "s|@INCLUDEDIR@|$includedir|" \
  -e "s|@VERSION@|$version|" "$here/abupdater.pc.in" > "$destdir$libdir/pkgconfig/abupdater.pc"
