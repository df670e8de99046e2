/* collectd's binary network protocol: value lists as the network plugin
 * writes them (tests/clients/test_collectd.c has the real collectd), NaN,
 * truncation, signed and encrypted datagrams. */
#include "tests/ingest/ingest_test_util.h"

#include <math.h>

typedef struct pkt {
    uint8_t b[1024];
    size_t n;
} pkt;

static void put_part(pkt *p, uint16_t type, const void *payload, size_t len)
{
    uint16_t plen = (uint16_t)(4 + len);
    p->b[p->n++] = (uint8_t)(type >> 8);
    p->b[p->n++] = (uint8_t)type;
    p->b[p->n++] = (uint8_t)(plen >> 8);
    p->b[p->n++] = (uint8_t)plen;
    memcpy(p->b + p->n, payload, len);
    p->n += len;
}

static void put_str(pkt *p, uint16_t type, const char *s)
{
    put_part(p, type, s, strlen(s) + 1);
}

static void put_be64(uint8_t *o, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        o[i] = (uint8_t)v;
}

/* A values part: gauges as little-endian doubles, the rest big-endian. */
static void put_values(pkt *p, const uint8_t *types, const double *vals, uint16_t count)
{
    uint8_t body[2 + 16 * 9];
    body[0] = (uint8_t)(count >> 8);
    body[1] = (uint8_t)count;
    memcpy(body + 2, types, count);
    for (uint16_t i = 0; i < count; i++) {
        uint8_t *o = body + 2 + count + 8 * i;
        if (types[i] == 1)
            memcpy(o, &vals[i], 8);
        else
            put_be64(o, (uint64_t)(int64_t)vals[i]);
    }
    put_part(p, 6, body, 2 + (size_t)count * 9);
}

static size_t parse(fixture *f, const pkt *p)
{
    collected_reset(&f->out);
    size_t r = rf_parse_collectd(f->ctx, &f->rx, (const char *)p->b, p->n);
    rf_parse_flush(f->ctx);
    return r;
}

static void test_value_lists(void **state)
{
    (void)state;
    rf_parse_config cfg = {.source_id = 1};
    fixture *f = fixture_new(&cfg);
    pkt p = {0};
    uint8_t t[8];
    put_str(&p, 0, "rack1.node-7");
    put_be64(t, 1700000100ull << 30); /* time_hr: 2^-30 s */
    put_part(&p, 8, t, 8);
    put_str(&p, 2, "app");
    put_str(&p, 3, "web.1");
    put_str(&p, 4, "load");
    put_values(&p, (const uint8_t[]){1, 1, 1}, (const double[]){0.5, 1.25, -3e-5}, 3);
    put_str(&p, 4, "derive"); /* the identity so far persists */
    put_str(&p, 5, "requests");
    put_values(&p, (const uint8_t[]){2}, (const double[]){-1000}, 1);
    put_str(&p, 4, "gauge");
    put_values(&p, (const uint8_t[]){1, 1}, (const double[]){NAN, 7}, 2);
    assert_int_equal(parse(f, &p), 0);
    assert_int_equal(n_data(f), 3 + 1 + 1);
    /* No types.db: three values are named by index, one by "value". */
    assert_int_equal(data_ev(f, 0)->series_id,
                     id_of("app_0,host=rack1.node-7,instance=web.1,type=load value"));
    assert_int_equal(data_ev(f, 2)->series_id,
                     id_of("app_2,host=rack1.node-7,instance=web.1,type=load value"));
    assert_true(data_ev(f, 2)->value.f64 == -3e-5);
    assert_int_equal(data_ev(f, 0)->event_time_ns, 1700000100LL * 1000000000LL);
    assert_int_equal(data_ev(f, 0)->flags, RF_EVF_HAS_CLIENT_TIME);
    const rf_event *d = data_ev(f, 3);
    assert_int_equal(d->series_id, id_of("app_value,host=rack1.node-7,instance=web.1,type=derive,"
                                         "type_instance=requests value"));
    assert_true(d->value.f64 == -1000);
    assert_int_equal(d->kind, RF_KIND_CUMULATIVE);
    /* The NaN is skipped and counted; its neighbour in the list stays. */
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_NAN_VALUES), 1);
    assert_int_equal(data_ev(f, 4)->series_id, id_of("app_1,host=rack1.node-7,instance=web.1,"
                                                     "type=gauge,type_instance=requests value"));
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_LINES_OK), 3);
    fixture_free(f);
}

static void test_refused(void **state)
{
    (void)state;
    rf_parse_config cfg = {.source_id = 1};
    fixture *f = fixture_new(&cfg);
    pkt p = {0};
    put_str(&p, 2, "app");
    put_str(&p, 4, "gauge");
    put_values(&p, (const uint8_t[]){1}, (const double[]){1}, 1);
    pkt cut = p;
    cut.n -= 3; /* the last part runs past the datagram */
    assert_int_equal(parse(f, &cut), 1);
    assert_int_equal(n_data(f), 0);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SYNTAX), 1);
    pkt bad = {0};
    put_str(&bad, 2, "no-nul");
    bad.b[bad.n - 1] = 'x'; /* a string without its NUL */
    assert_int_equal(parse(f, &bad), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SYNTAX), 2);
    /* Signed and encrypted datagrams: refused whole, by reason. */
    pkt sig = {0};
    uint8_t mac[32 + 8] = {0};
    put_part(&sig, 0x0200, mac, sizeof(mac));
    memcpy(sig.b + sig.n, p.b, p.n);
    sig.n += p.n;
    assert_int_equal(parse(f, &sig), 1);
    assert_int_equal(n_data(f), 0);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SIGNED_PACKET), 1);
    pkt enc = {0};
    put_part(&enc, 0x0210, mac, sizeof(mac));
    assert_int_equal(parse(f, &enc), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_ENCRYPTED_PACKET), 1);
    /* The good datagram still goes in. */
    assert_int_equal(parse(f, &p), 0);
    assert_int_equal(n_data(f), 1);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_lists),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
