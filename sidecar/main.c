/* main.c — the keywatch executable: everything is in the libraries (see cli.c). */
#include "cli.h"

int main(int argc, char **argv) { return kw_cli_main(argc, argv); }
