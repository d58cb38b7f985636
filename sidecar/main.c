/* main.c — the keywatch executable: everything is in the libraries (see cli.c).
 *
 * Before anything reads a secret (the fingerprint secret, later admin credentials), the
 * process makes itself non-dumpable: no core file, no /proc/PID/mem or ptrace by the
 * same user, so raw keys in memory (a line being parsed) never reach a core dump.
 * SIGPIPE is ignored: a dashboard client or webhook peer that goes away mid-answer is
 * an EPIPE for the code that writes, never the end of the process.
 */
#include "cli.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>

int main(int argc, char **argv) {
  struct rlimit no_core = {0, 0};
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  setrlimit(RLIMIT_CORE, &no_core);
  signal(SIGPIPE, SIG_IGN);
  return kw_cli_main(argc, argv);
}
