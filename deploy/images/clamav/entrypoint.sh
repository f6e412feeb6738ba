#!/bin/sh
# clamd in the foreground on CLAMD_PORT, logging to stderr.
set -eu
sed "s/^TCPSocket .*/TCPSocket ${CLAMD_PORT:-3310}/" /etc/clamav/clamd.conf > /tmp/clamd.conf
exec clamd -c /tmp/clamd.conf
