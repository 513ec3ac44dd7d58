/*  codec_keys.h - the keys and types of CONTRACT.md section 1 as test data:
    for each key a sample value, how to set it on an event being built, how
    to put it in a body made by msgpack-c's packer, and how to check it on a
    decoded event.
*/
#ifndef CODEC_KEYS_H_INCLUDED
#define CODEC_KEYS_H_INCLUDED

#include "codec_test_util.h"

typedef enum { KT_STR, KT_UINT, KT_BOOL, KT_FLOAT, KT_MAP } key_type_t;

typedef struct {
    const char *name;
    key_type_t t;
    int strkey;      //  mw_str_key_t for KT_STR, else -1
    uint32_t hasbit; //  MW_HAS_* for KT_UINT/KT_BOOL/KT_FLOAT (0 for header uints)
    const char *s;   //  sample string
    uint64_t u;      //  sample uint
    bool b;          //  sample bool
    double d;        //  sample float
} key_desc_t;

//  Every key of an event that is not a header key (v type ts miner sid seq).
extern const key_desc_t KEYS[];
extern const size_t KEY_COUNT;
const key_desc_t *key_desc (const char *name);

typedef struct {
    mw_type_t kind;
    const char *name;
    const char *required[3];
    const char *optional[8];
    bool one_of; //  required keys: at least one of them (validator_connection)
} type_spec_t;

//  The eight types of CONTRACT.md.
extern const type_spec_t TYPES[];
extern const size_t TYPE_COUNT;

//  Set the sample value of a key on an event being built (KT_MAP: nothing,
//  the test adds its kv).
void built_set (mw_event_t *e, const key_desc_t *d);
//  Put the sample value of a key into a body's fields.
void fields_set (fields_t *fs, const key_desc_t *d);
//  Does a decoded event hold the key's sample value? Is the key absent?
bool decoded_has_sample (const mw_event_t *e, const key_desc_t *d, char *why, size_t whysz);
bool decoded_absent (const mw_event_t *e, const key_desc_t *d, char *why, size_t whysz);
//  Is a decoded event the event that was built (and its kv now extras)?
bool decoded_matches_built (const mw_event_t *dec, const mw_event_t *src, char *why,
                            size_t whysz);

#endif
