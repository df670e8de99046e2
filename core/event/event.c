/* Series identity: hashing canonical keys and owning their text. */
#include "core/event/event.h"

#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t rf_series_id_of_key(const char *key, size_t len)
{
    uint64_t h = XXH3_64bits(key, len);
    return h ? h : 1;
}

rf_series_key *rf_series_key_new(const char *text, size_t len, size_t measurement_len,
                                 size_t field_offset)
{
    if (len > UINT32_MAX || measurement_len > UINT16_MAX || field_offset > UINT16_MAX)
        return NULL;
    rf_series_key *k = malloc(sizeof(*k) + len + 1);
    if (!k)
        return NULL;
    k->series_id = rf_series_id_of_key(text, len);
    k->len = (uint32_t)len;
    k->measurement_len = (uint16_t)measurement_len;
    k->field_offset = (uint16_t)field_offset;
    memcpy(k->text, text, len);
    k->text[len] = '\0';
    return k;
}

void rf_series_key_free(rf_series_key *key)
{
    free(key);
}
