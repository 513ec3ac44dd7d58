/*  mw_curve.h - CURVE keys for the clients of a minerwatch broker.

    A broker started with --curve-secret is a CURVE server: a client needs
    the broker's public key, and a key pair of its own (a new one each run
    is enough unless the broker lists its clients with --curve-clients).
    This is how libminerwatch and the `minerwatch` commands read those keys
    and put them on a ZeroMQ socket: raw libzmq and no czmq, so that a miner
    still links only libzmq.

    Keys come as 40 characters of Z85 (what `minerwatch keygen` prints and
    pyzmq's zmq.curve_keypair() returns) or in czmq certificate files (what
    `minerwatch keygen` and czmq's zcert_save write): ZPL text with a
    `curve` section holding `public-key = "..."` and, in the secret file,
    `secret-key = "..."`. The reader is strict: anything it does not
    understand is an error with the file, the line and what was expected,
    never a key silently taken from the wrong place.

    Every function returns 0, or -1 with a message in err (at most err_size
    bytes, NUL-terminated) that names the file or the text it was given.
*/
#ifndef MW_CURVE_H_INCLUDED
#define MW_CURVE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MW_CURVE_KEY_BYTES 32    //  a CURVE key
#define MW_CURVE_KEY_Z85 40      //  the same as Z85 text
#define MW_CURVE_FILE_MAX 65536  //  largest certificate file read (one is ~500 bytes)

//  A client's key pair.
typedef struct {
    uint8_t public_key[MW_CURVE_KEY_BYTES];
    uint8_t secret_key[MW_CURVE_KEY_BYTES];
} mw_curve_pair_t;

//  Read a server's public key from text: the path of a certificate file
//  (public or secret; its curve/public-key is used) if a file of that name
//  exists, else 40 characters of Z85. Return 0 with the key in key, or -1.
int
    mw_curve_server_key (const char *text, uint8_t *key, char *err, size_t err_size);

//  Load a key pair from a czmq secret certificate file (the `_secret` file
//  of `minerwatch keygen`). Its secret-key must belong to its public-key.
//  Return 0 with the pair in pair, or -1 (pair is then zeroed).
int
    mw_curve_load_secret (const char *path, mw_curve_pair_t *pair, char *err, size_t err_size);

//  Make a new random key pair (zmq_curve_keypair). Return 0, or -1 if
//  libzmq was built without CURVE.
int
    mw_curve_new_pair (mw_curve_pair_t *pair, char *err, size_t err_size);

//  Make socket (a libzmq socket, before its first bind or connect) a CURVE
//  client of the server with public key server_key, authenticating with
//  pair. Return 0, or -1 if libzmq refused the options (no CURVE support).
int
    mw_curve_apply (void *socket, const uint8_t *server_key, const mw_curve_pair_t *pair,
                    char *err, size_t err_size);

//  All of the above in one call: read server_key (mw_curve_server_key), load
//  client_cert (mw_curve_load_secret) or, when it is NULL, make a new pair,
//  and apply them to socket. Secret key material is wiped from memory
//  before returning. Return 0, or -1.
int
    mw_curve_client (void *socket, const char *server_key, const char *client_cert, char *err,
                     size_t err_size);

#ifdef __cplusplus
}
#endif

#endif
