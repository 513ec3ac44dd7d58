/*  main.c - `minerwatch`: finds the command and hands it the arguments.

    A command is one mw_cli_command_t in its own file (cmd_NAME.c); adding
    one is adding a line to s_commands.
*/
#include "mw_cli.h"
#include "mw_publisher.h"

#include <czmq.h>
#include <string.h>

#ifndef MW_CLI_VERSION
#error "MW_CLI_VERSION must be defined by the build (see cli/CMakeLists.txt)"
#endif

static const mw_cli_command_t *s_commands[] = {&mw_cmd_up,       &mw_cmd_tail,   &mw_cmd_publish,
                                               &mw_cmd_simulate, &mw_cmd_status, &mw_cmd_keygen,
                                               &mw_cmd_bench,    &mw_cmd_config, NULL};

static const mw_cli_command_t *
s_find (const char *name)
{
    for (int i = 0; s_commands[i]; i++)
        if (strcmp (s_commands[i]->name, name) == 0)
            return s_commands[i];
    return NULL;
}

static void
s_usage (FILE *out)
{
    fprintf (out, "minerwatch - live telemetry for task-processing services (Bittensor miners)\n"
                  "\n"
                  "Usage: minerwatch COMMAND [OPTIONS] [ARGS]\n"
                  "\n"
                  "Commands:\n");
    for (int i = 0; s_commands[i]; i++)
        fprintf (out, "  %-10s %s\n", s_commands[i]->name, s_commands[i]->summary);
    fprintf (out, "  %-10s %s\n", "help", "show the help of a command: minerwatch help COMMAND");
    fprintf (out, "\n"
                  "Options:\n"
                  "  -h, --help      show this help and exit\n"
                  "  -V, --version   show the version and exit\n"
                  "\n"
                  "Endpoints use czmq's notation: '@tcp://HOST:PORT' binds, '>tcp://HOST:PORT'\n"
                  "connects. Exit codes: 0 done, 1 failed, 2 bad usage.\n"
                  "\n"
                  "Start here: a broker and a dashboard with simulated miners, then open\n"
                  "http://127.0.0.1:8080/api/dashboard:\n"
                  "  minerwatch up --demo\n"
                  "\n"
                  "Without a broker, two terminals:\n"
                  "  minerwatch tail @tcp://127.0.0.1:7710\n"
                  "  minerwatch simulate --endpoint '>tcp://127.0.0.1:7710'\n");
}

static void
s_version (void)
{
    int major, minor, patch;
    zmq_version (&major, &minor, &patch);
    printf ("minerwatch %s (libminerwatch %s, libzmq %d.%d.%d, czmq %d.%d.%d)\n", MW_CLI_VERSION,
            mw_version (), major, minor, patch, CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR,
            CZMQ_VERSION_PATCH);
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        s_usage (stderr);
        return MW_CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp (name, "-h") == 0 || strcmp (name, "--help") == 0) {
        s_usage (stdout);
        return MW_CLI_OK;
    }
    if (strcmp (name, "-V") == 0 || strcmp (name, "--version") == 0 ||
        strcmp (name, "version") == 0) {
        s_version ();
        return MW_CLI_OK;
    }
    if (strcmp (name, "help") == 0) {
        if (argc < 3) {
            s_usage (stdout);
            return MW_CLI_OK;
        }
        const mw_cli_command_t *cmd = s_find (argv[2]);
        if (!cmd) {
            fprintf (stderr, "minerwatch help: unknown command '%s'; see 'minerwatch --help'\n",
                     argv[2]);
            return MW_CLI_USAGE;
        }
        cmd->help (stdout);
        return MW_CLI_OK;
    }
    const mw_cli_command_t *cmd = s_find (name);
    if (!cmd) {
        if (name[0] == '-')
            fprintf (stderr, "minerwatch: unknown option '%s'; see 'minerwatch --help'\n", name);
        else
            fprintf (stderr, "minerwatch: unknown command '%s'; see 'minerwatch --help'\n", name);
        return MW_CLI_USAGE;
    }
    mw_cli_catch_signals ();
    return cmd->run (argc - 1, argv + 1);
}
