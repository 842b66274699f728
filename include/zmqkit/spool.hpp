// zmqkit — the spool (umbrella header): an append-only, checksummed, self-describing on-disk
// message log with group commit, delivery state (attempts, acks, dead letters), recovery and
// limits. Library zmqkit::spool (no ZeroMQ). The format is specified in docs/spool-format.md.
#pragma once

#include <zmqkit/spool/file_system.hpp>
#include <zmqkit/spool/format.hpp>
#include <zmqkit/spool/options.hpp>
#include <zmqkit/spool/report.hpp>
#include <zmqkit/spool/spool.hpp>
