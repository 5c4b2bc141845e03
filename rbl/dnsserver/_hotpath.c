/* The compiled UDP hot path: rbl.dnsserver._hotpath.
 *
 * Answers the common DNSBL query (one question, class IN, an IPv4 name or the
 * apex of an IP zone, at most an OPT record without options) byte for byte as
 * rbl.dnsserver.responder.Responder.fast does, and declines everything else
 * to that Python code. rbl/dnsserver/hotpath.py builds the "plan" an Engine
 * reads (answer fragments per zone and value id, rendered by the Python
 * code, so the C never formats a record of its own) and checks it is current.
 *
 * Hostile input: every read of a datagram is checked against its length, and
 * every write against the reply buffer; anything the C cannot answer exactly
 * is declined, and a decline has no side effect (no counter is bumped).
 *
 * The index is the one the follower updates: rbl.index.tables.PrefixTable.
 * Its arrays are exported (Py_buffer) only while one batch is answered, when
 * no Python code runs, so the follower can always resize them in between.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64
#define RECV_SIZE 65535 /* what the Python loop's recvfrom(65535) reads */
#define REPLY_SIZE 4096 /* [dns] udp_payload is at most 4096: bigger replies go TC */
#define MAX_LEVELS 33   /* IPv4 prefix lengths 0..32 */
#define NRCODES 17      /* rbl.dnsserver.responder.RCODE_NAMES */
#define TYPE_A 1
#define TYPE_NS 2
#define TYPE_SOA 6
#define TYPE_TXT 16
#define TYPE_ANY 255
#define RCODE_NXDOMAIN 3
#define RCODE_REFUSED 5

typedef struct {
    uint32_t mask;
    PyObject *overlay; /* dict network -> value id (-1: deleted), new reference */
    Py_buffer keys, vals, dir;
    int has_dir;
} LevelView;

/* One table's arrays, exported for the current batch only. */
typedef struct {
    int state; /* 0: not taken this batch, 1: taken, -1: failed (decline) */
    int nlevels;
    LevelView levels[MAX_LEVELS];
} TableView;

typedef struct {
    long a_count;
    const char *a; /* A records owned by the QNAME pointer */
    Py_ssize_t a_len;
    PyObject *txt_parts; /* tuple of bytes between the keys, or NULL: decline TXT */
} ValuePlan;

typedef struct {
    const char *root; /* lowercase wire name of the apex */
    Py_ssize_t root_len;
    long nlabels;
    int is_ip;
    PyObject *table;  /* PrefixTable of IPv4 entries, or NULL */
    PyObject *rcodes; /* Zone.rcodes, the list the counts are added to */
    PyObject *negs;   /* tuple: negative authority by apex offset - 12 */
    const char *soa, *ns, *txt_head;
    Py_ssize_t soa_len, ns_len;
    long ns_count;
    Py_ssize_t nvalues;
    ValuePlan *values;
    long long counts[NRCODES];
    TableView view;
} ZonePlan;

typedef struct {
    PyObject_HEAD
    PyObject *plan; /* the tuple given: keeps every borrowed pointer alive */
    PyObject *outside; /* Responder.outside_rcodes */
    long long outside_refused;
    long udp_payload;
    const char *opt, *opt_do;
    Py_ssize_t nzones;
    ZonePlan *zones;
} Engine;

/* -- the index ----------------------------------------------------------------- */

/* Attribute names, interned once (a C-string lookup makes a new str on every call). */
static PyObject *s_levels, *s_prefixlen, *s_overlay, *s_keys, *s_vals, *s_directory;

static void view_release(TableView *v) {
    for (int i = 0; i < v->nlevels; i++) {
        LevelView *l = &v->levels[i];
        PyBuffer_Release(&l->keys);
        PyBuffer_Release(&l->vals);
        if (l->has_dir) PyBuffer_Release(&l->dir);
        Py_XDECREF(l->overlay);
    }
    v->nlevels = 0;
    v->state = 0;
}

static int take_buffer(PyObject *level, PyObject *name, Py_buffer *buf) {
    PyObject *obj = PyObject_GetAttr(level, name);
    if (obj == NULL) return -1;
    int rc = PyObject_GetBuffer(obj, buf, PyBUF_SIMPLE);
    Py_DECREF(obj);
    return rc;
}

/* Export one Level's arrays and overlay; on failure nothing stays taken. */
static int level_take(LevelView *l, PyObject *level) {
    PyObject *plen = PyObject_GetAttr(level, s_prefixlen);
    long prefixlen = plen ? PyLong_AsLong(plen) : -1;
    Py_XDECREF(plen);
    if (prefixlen < 0 || prefixlen > 32) return -1;
    l->mask = prefixlen ? (uint32_t)(0xFFFFFFFFu << (32 - prefixlen)) : 0;
    l->overlay = PyObject_GetAttr(level, s_overlay);
    if (l->overlay == NULL || !PyDict_Check(l->overlay)) goto no_overlay;
    if (take_buffer(level, s_keys, &l->keys) < 0) goto no_overlay;
    if (take_buffer(level, s_vals, &l->vals) < 0) goto no_vals;
    PyObject *dir = PyObject_GetAttr(level, s_directory);
    if (dir == NULL) goto no_dir;
    l->has_dir = dir != Py_None;
    int rc = l->has_dir ? PyObject_GetBuffer(dir, &l->dir, PyBUF_SIMPLE) : 0;
    Py_DECREF(dir);
    if (rc < 0) goto no_dir;
    /* keys: array('I'); vals: array of B, H or I as wide as the largest id; directory: 65537 I */
    Py_ssize_t n = l->keys.len / 4, isz = n ? l->vals.len / n : 1;
    if (l->keys.len % 4 == 0 && (isz == 1 || isz == 2 || isz == 4) && l->vals.len == isz * n &&
        (!l->has_dir || l->dir.len == 4 * 65537))
        return 0;
    if (l->has_dir) PyBuffer_Release(&l->dir);
no_dir:
    PyBuffer_Release(&l->vals);
no_vals:
    PyBuffer_Release(&l->keys);
no_overlay:
    Py_XDECREF(l->overlay);
    return -1;
}

/* Export the levels of ``table`` (PrefixTable._levels, longest prefix first). */
static int view_take(TableView *v, PyObject *table) {
    v->nlevels = 0;
    PyObject *levels = PyObject_GetAttr(table, s_levels);
    int ok = levels != NULL && PyTuple_Check(levels) && PyTuple_GET_SIZE(levels) <= MAX_LEVELS;
    for (Py_ssize_t i = 0; ok && i < PyTuple_GET_SIZE(levels); i++) {
        ok = level_take(&v->levels[i], PyTuple_GET_ITEM(levels, i)) == 0;
        v->nlevels += ok;
    }
    Py_XDECREF(levels);
    if (ok) {
        v->state = 1;
        return 0;
    }
    PyErr_Clear();
    view_release(v);
    v->state = -1;
    return -1;
}

/* PrefixTable.lookup: -1 none, -2 failure (decline), else the value id (0: excluded). */
static long view_lookup(TableView *v, uint32_t address) {
    for (int i = 0; i < v->nlevels; i++) {
        LevelView *l = &v->levels[i];
        uint32_t network = address & l->mask;
        if (PyDict_GET_SIZE(l->overlay)) {
            PyObject *key = PyLong_FromUnsignedLong(network);
            if (key == NULL) goto fail;
            PyObject *found = PyDict_GetItemWithError(l->overlay, key);
            Py_DECREF(key);
            if (found != NULL) {
                long vid = PyLong_AsLong(found);
                if (vid == -1) {
                    if (PyErr_Occurred()) goto fail;
                    continue; /* a tombstone: look at shorter prefixes */
                }
                return vid < 0 ? -2 : vid;
            }
            if (PyErr_Occurred()) goto fail;
        }
        const uint32_t *keys = l->keys.buf;
        Py_ssize_t n = l->keys.len / 4, lo = 0, hi = n;
        if (l->has_dir) {
            const uint32_t *dir = l->dir.buf;
            lo = dir[network >> 16];
            hi = dir[(network >> 16) + 1];
            if (hi > n) hi = n;
            if (lo > hi) lo = hi;
        }
        while (lo < hi) { /* bisect_left */
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (keys[mid] < network) lo = mid + 1;
            else hi = mid;
        }
        if (lo < n && keys[lo] == network) {
            Py_ssize_t isz = l->vals.len / n;
            const unsigned char *p = (const unsigned char *)l->vals.buf + lo * isz;
            if (isz == 1) return p[0];
            if (isz == 2) return ((const uint16_t *)l->vals.buf)[lo];
            return ((const uint32_t *)l->vals.buf)[lo];
        }
    }
    return -1;
fail:
    PyErr_Clear();
    return -2;
}

/* -- answering --------------------------------------------------------------------- */

typedef struct {
    unsigned char *p, *end;
} Out;

static int put(Out *o, const void *src, Py_ssize_t n) {
    if (n < 0 || o->end - o->p < n) return -1;
    memcpy(o->p, src, n);
    o->p += n;
    return 0;
}

static int put_header(Out *o, const unsigned char *id, int f1, int f2, int an, int ns, int ar) {
    unsigned char h[12] = {id[0], id[1], f1, f2, 0, 1, an >> 8, an & 255, ns >> 8, ns & 255,
                           ar >> 8, ar & 255};
    return put(o, h, 12);
}

/* Offset past QTYPE/QCLASS walking the labels (responder._question_end), or -1. */
static Py_ssize_t question_end(const unsigned char *d, Py_ssize_t size) {
    Py_ssize_t i = 12;
    while (i < size) {
        unsigned len = d[i];
        if (len == 0) return i + 5 <= size ? i + 5 : -1;
        if (len > 63) return -1;
        i += 1 + len;
    }
    return -1;
}

/* A canonical decimal octet ("0".."255", no leading zero), or -1. */
static int octet(const unsigned char *s, unsigned len) {
    if (len < 1 || len > 3 || (len > 1 && s[0] == '0')) return -1;
    int v = 0;
    for (unsigned i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 255 ? v : -1;
}

/* The TXT record of Zone.txt_answer: the parts joined by the key, split into
 * character-strings of 255 bytes (wire.txt_rdata). */
static int put_txt(Out *o, const char *head, PyObject *parts, const unsigned char *key,
                   Py_ssize_t key_len) {
    unsigned char text[REPLY_SIZE];
    Py_ssize_t n = 0, count = PyTuple_GET_SIZE(parts);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *part = PyTuple_GET_ITEM(parts, i);
        Py_ssize_t len = PyBytes_GET_SIZE(part);
        if (len > REPLY_SIZE - n) return -1;
        memcpy(text + n, PyBytes_AS_STRING(part), len);
        n += len;
        if (i + 1 < count) {
            if (key_len > REPLY_SIZE - n) return -1;
            memcpy(text + n, key, key_len);
            n += key_len;
        }
    }
    Py_ssize_t rdlen = n ? n + (n + 254) / 255 : 1;
    unsigned char rr[12] = {0xC0, 0x0C};
    memcpy(rr + 2, head, 8);
    rr[10] = (unsigned char)(rdlen >> 8);
    rr[11] = (unsigned char)(rdlen & 255);
    if (rdlen > 65535 || put(o, rr, 12) < 0) return -1;
    if (n == 0) return put(o, "\0", 1);
    for (Py_ssize_t start = 0; start < n; start += 255) {
        unsigned char chunk = (unsigned char)(n - start < 255 ? n - start : 255);
        if (put(o, &chunk, 1) < 0 || put(o, text + start, chunk) < 0) return -1;
    }
    return 0;
}

enum { APEX, LISTED, NXDOMAIN };

/* Answer one query into out[0..REPLY_SIZE); its length, or -1 to decline. */
static Py_ssize_t answer(Engine *e, const unsigned char *d, Py_ssize_t size, unsigned char *out) {
    if (size < 17 || d[2] & 0xF8) return -1; /* QR set, or an opcode other than QUERY */
    static const unsigned char one[6] = {0, 1, 0, 0, 0, 0};
    if (memcmp(d + 4, one, 6) || d[10] || d[11] > 1) return -1;
    int edns = d[11];
    Py_ssize_t qend;
    if (!edns) {
        qend = size;
    } else if (!d[size - 11] && !d[size - 10] && d[size - 9] == 0x29 &&
               !d[size - 2] && !d[size - 1]) {
        qend = size - 11; /* an OPT record without options ends the packet */
    } else {
        qend = question_end(d, size);
        if (qend < 0) return -1;
    }
    if (qend < 17 || qend > 12 + 255 + 4) return -1;
    unsigned qtype = d[qend - 4] << 8 | d[qend - 3], qclass = d[qend - 2] << 8 | d[qend - 1];
    if (qclass != 1 || (qtype >= 128 && qtype < 255) || qtype == 0) return -1;
    const char *opt = "";
    Py_ssize_t opt_len = 0, limit = 512;
    if (edns) {
        if (size < qend + 11) return -1;
        const unsigned char *o = d + qend;
        unsigned rtype = o[1] << 8 | o[2], payload = o[3] << 8 | o[4], rdlength = o[9] << 8 | o[10];
        if (o[0] || rtype != 41 || o[6] || qend + 11 + (Py_ssize_t)rdlength != size) return -1;
        opt = o[7] & 0x80 ? e->opt_do : e->opt;
        opt_len = 11;
        limit = payload < e->udp_payload ? payload : e->udp_payload;
        if (limit < 512) limit = 512;
    }
    int rd = 0x84 | (d[2] & 0x01), cd = d[3] & 0x10;
    /* the QNAME, lowercase as bytes.lower() makes it (ASCII letters only) */
    unsigned char q[256];
    Py_ssize_t qlen = qend - 4 - 12;
    for (Py_ssize_t i = 0; i < qlen; i++) {
        unsigned char c = d[12 + i];
        q[i] = c >= 'A' && c <= 'Z' ? c + 32 : c;
    }
    ZonePlan *z = NULL;
    for (Py_ssize_t i = 0; i < e->nzones; i++) {
        ZonePlan *c = &e->zones[i];
        if (qlen >= c->root_len && !memcmp(q + qlen - c->root_len, c->root, c->root_len) &&
            (z == NULL || c->nlabels > z->nlabels))
            z = c;
    }
    Out o = {out, out + REPLY_SIZE};
    if (z == NULL) {
        if (question_end(d, size) != qend) return -1; /* malformed: FORMERR from Python */
        if (put_header(&o, d, (rd & 1) | 0x80, cd | RCODE_REFUSED, 0, 0, edns) < 0 ||
            put(&o, d + 12, qend - 12) < 0 || put(&o, opt, opt_len) < 0)
            return -1;
        e->outside_refused++;
        return o.p - out;
    }
    /* the labels below the apex must end exactly where it starts */
    Py_ssize_t apex = qlen - z->root_len, j = 0;
    Py_ssize_t lab[4];
    int count = 0;
    while (j < apex) {
        unsigned len = q[j];
        if (len == 0 || len > 63) return -1;
        if (count == 4) return -1; /* not an IPv4 name: Python answers it */
        lab[count++] = j;
        j += 1 + len;
    }
    if (j != apex) return -1;
    int outcome;
    long vid = 0;
    unsigned char key[16];
    Py_ssize_t key_len = 0;
    if (count == 0) {
        outcome = APEX;
    } else if (count == 4 && z->is_ip && z->table != NULL) {
        int v[4], all = 1;
        for (int i = 0; i < 4; i++) {
            v[i] = octet(q + lab[i] + 1, q[lab[i]]);
            all &= v[i] >= 0;
        }
        int short4 = apex == 8; /* four one-character labels: maybe an IPv6 non-terminal */
        if (!all) {
            if (short4) return -1;
            outcome = NXDOMAIN;
        } else {
            if (z->view.state == 0) view_take(&z->view, z->table);
            if (z->view.state < 0) return -1;
            vid = view_lookup(&z->view, (uint32_t)v[3] << 24 | v[2] << 16 | v[1] << 8 | v[0]);
            if (vid == -2) return -1;
            if (vid > 0) {
                outcome = LISTED;
                for (int i = 3; i >= 0; i--) { /* the key as people write it: a.b.c.d */
                    memcpy(key + key_len, q + lab[i] + 1, q[lab[i]]);
                    key_len += q[lab[i]];
                    if (i) key[key_len++] = '.';
                }
            } else {
                if (short4) return -1;
                outcome = NXDOMAIN;
            }
        }
    } else {
        return -1;
    }
    int rcode = outcome == NXDOMAIN ? RCODE_NXDOMAIN : 0, answers = 0;
    /* the answer section goes after a header and question written last */
    Py_ssize_t at = 12 + (qend - 12);
    Out a = {out + at, out + REPLY_SIZE};
    int failed = 0;
    if (outcome == LISTED) {
        if (vid >= z->nvalues || z->values[vid].a == NULL) return -1; /* a value new to the plan */
        ValuePlan *vp = &z->values[vid];
        int txt = qtype == TYPE_TXT || qtype == TYPE_ANY;
        if (txt && vp->txt_parts == NULL) return -1;
        if (qtype == TYPE_A || qtype == TYPE_ANY) {
            answers += (int)vp->a_count;
            failed |= put(&a, vp->a, vp->a_len);
        }
        if (txt) {
            answers += 1;
            failed |= put_txt(&a, z->txt_head, vp->txt_parts, key, key_len);
        }
    } else if (outcome == APEX) {
        if (qtype == TYPE_SOA || qtype == TYPE_ANY) {
            answers += 1;
            failed |= put(&a, z->soa, z->soa_len);
        }
        if (qtype == TYPE_NS || qtype == TYPE_ANY) {
            answers += (int)z->ns_count;
            failed |= put(&a, z->ns, z->ns_len);
        }
    }
    int authority = 0;
    if (!answers) {
        Py_ssize_t slot = apex; /* negative_authority(12 + apex) */
        if (slot >= PyTuple_GET_SIZE(z->negs)) return -1;
        PyObject *neg = PyTuple_GET_ITEM(z->negs, slot);
        a.p = out + at;
        failed = put(&a, PyBytes_AS_STRING(neg), PyBytes_GET_SIZE(neg));
        authority = 1;
    }
    failed |= put(&a, opt, opt_len);
    Py_ssize_t length = a.p - out;
    if (failed || answers > 65535) {
        /* too big for our buffer: fine if the reply is truncated anyway, else decline */
        if (limit >= REPLY_SIZE) return -1;
        length = REPLY_SIZE + 1;
    }
    if (length > limit) {
        o.p = out;
        if (put_header(&o, d, rd | 0x02, cd | rcode, 0, 0, edns) < 0 ||
            put(&o, d + 12, qend - 12) < 0 || put(&o, opt, opt_len) < 0)
            return -1;
        length = o.p - out;
    } else if (put_header(&o, d, rd, answers ? cd : cd | rcode, answers, authority, edns) < 0 ||
               put(&o, d + 12, qend - 12) < 0) {
        return -1;
    }
    z->counts[rcode]++;
    return length;
}

/* Release the arrays taken for this batch: the follower may resize them again. */
static void finish_batch(Engine *e) {
    for (Py_ssize_t i = 0; i < e->nzones; i++) view_release(&e->zones[i].view);
}

static int add_count(PyObject *list, Py_ssize_t slot, long long n) {
    if (!n) return 0;
    if (!PyList_Check(list) || slot >= PyList_GET_SIZE(list)) {
        PyErr_SetString(PyExc_RuntimeError, "hot path: a zone's rcode list has changed shape");
        return -1;
    }
    PyObject *old = PyList_GET_ITEM(list, slot);
    PyObject *add = PyLong_FromLongLong(n);
    PyObject *sum = add ? PyNumber_Add(old, add) : NULL;
    Py_XDECREF(add);
    if (sum == NULL) return -1;
    return PyList_SetItem(list, slot, sum); /* steals sum */
}

/* Add the counts kept since the last flush to Zone.rcodes and Responder.outside_rcodes. */
static int flush_counts(Engine *e) {
    int rc = 0;
    for (Py_ssize_t i = 0; i < e->nzones; i++) {
        ZonePlan *z = &e->zones[i];
        for (int r = 0; r < NRCODES; r++) {
            rc |= add_count(z->rcodes, r, z->counts[r]);
            z->counts[r] = 0;
        }
    }
    rc |= add_count(e->outside, RCODE_REFUSED, e->outside_refused);
    e->outside_refused = 0;
    return rc;
}

/* -- the engine: a plan built by rbl/dnsserver/hotpath.py -------------------------- */

static void engine_clear(Engine *e) {
    if (e->zones != NULL) {
        for (Py_ssize_t i = 0; i < e->nzones; i++) {
            view_release(&e->zones[i].view);
            PyMem_Free(e->zones[i].values);
        }
        PyMem_Free(e->zones);
        e->zones = NULL;
    }
    e->nzones = 0;
    Py_CLEAR(e->plan);
}

static void engine_dealloc(Engine *e) {
    engine_clear(e);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static int bytes_of(PyObject *obj, Py_ssize_t want, const char **p, Py_ssize_t *len) {
    if (!PyBytes_Check(obj) || (want >= 0 && PyBytes_GET_SIZE(obj) != want)) {
        PyErr_SetString(PyExc_TypeError, "hot path plan: bad bytes field");
        return -1;
    }
    *p = PyBytes_AS_STRING(obj);
    if (len) *len = PyBytes_GET_SIZE(obj);
    return 0;
}

/* values: one entry per value id, None or (a_count, a_records, txt_parts or None) */
static int parse_values(ZonePlan *z, PyObject *values) {
    if (!PyTuple_Check(values)) return -1;
    z->nvalues = PyTuple_GET_SIZE(values);
    z->values = PyMem_Calloc(z->nvalues ? z->nvalues : 1, sizeof(ValuePlan));
    if (z->values == NULL) return -1;
    for (Py_ssize_t v = 0; v < z->nvalues; v++) {
        PyObject *item = PyTuple_GET_ITEM(values, v);
        if (item == Py_None) continue;
        PyObject *parts;
        ValuePlan *vp = &z->values[v];
        if (!PyArg_ParseTuple(item, "lO!O", &vp->a_count, &PyBytes_Type, &parts, &vp->txt_parts))
            return -1;
        bytes_of(parts, -1, &vp->a, &vp->a_len);
        if (vp->txt_parts == Py_None) {
            vp->txt_parts = NULL;
        } else {
            if (!PyTuple_Check(vp->txt_parts) || PyTuple_GET_SIZE(vp->txt_parts) < 1) return -1;
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(vp->txt_parts); i++)
                if (!PyBytes_Check(PyTuple_GET_ITEM(vp->txt_parts, i))) return -1;
        }
    }
    return 0;
}

/* Engine(zones, outside_rcodes, udp_payload, opt, opt_do); zones: a tuple of
 * (root, nlabels, is_ip, table or None, rcodes, negs, soa, ns, ns_count, values, txt_head) */
static int engine_init(Engine *e, PyObject *args, PyObject *kw) {
    (void)kw;
    PyObject *zones, *outside, *opt, *opt_do;
    engine_clear(e);
    if (!PyArg_ParseTuple(args, "O!O!lO!O!", &PyTuple_Type, &zones, &PyList_Type, &outside,
                          &e->udp_payload, &PyBytes_Type, &opt, &PyBytes_Type, &opt_do))
        return -1;
    e->plan = Py_NewRef(args);
    e->outside = outside;
    if (bytes_of(opt, 11, &e->opt, NULL) < 0 || bytes_of(opt_do, 11, &e->opt_do, NULL) < 0)
        return -1;
    e->nzones = PyTuple_GET_SIZE(zones);
    e->zones = PyMem_Calloc(e->nzones ? e->nzones : 1, sizeof(ZonePlan));
    if (e->zones == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < e->nzones; i++) {
        ZonePlan *z = &e->zones[i];
        PyObject *root, *soa, *ns, *values, *head;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(zones, i), "O!lpOO!O!O!O!lOO!", &PyBytes_Type,
                              &root, &z->nlabels, &z->is_ip, &z->table, &PyList_Type, &z->rcodes,
                              &PyTuple_Type, &z->negs, &PyBytes_Type, &soa, &PyBytes_Type, &ns,
                              &z->ns_count, &values, &PyBytes_Type, &head))
            return -1;
        if (z->table == Py_None) z->table = NULL;
        if (bytes_of(root, -1, &z->root, &z->root_len) < 0 ||
            bytes_of(soa, -1, &z->soa, &z->soa_len) < 0 ||
            bytes_of(ns, -1, &z->ns, &z->ns_len) < 0 || bytes_of(head, 8, &z->txt_head, NULL) < 0)
            return -1;
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(z->negs); k++)
            if (!PyBytes_Check(PyTuple_GET_ITEM(z->negs, k))) {
                PyErr_SetString(PyExc_TypeError, "hot path plan: negs must be bytes");
                return -1;
            }
        if (parse_values(z, values) < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "hot path plan: bad values");
            return -1;
        }
    }
    return 0;
}

/* answer(query) -> the reply bytes, or None where the Python path must answer */
static PyObject *engine_answer(Engine *e, PyObject *arg) {
    Py_buffer q;
    unsigned char out[REPLY_SIZE];
    if (PyObject_GetBuffer(arg, &q, PyBUF_SIMPLE) < 0) return NULL;
    Py_ssize_t n = answer(e, q.buf, q.len, out);
    finish_batch(e);
    PyBuffer_Release(&q);
    if (flush_counts(e) < 0) return NULL;
    if (n < 0) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)out, n);
}

/* -- the UDP loop ---------------------------------------------------------------------- */

enum { SKIP, MINE, PYTHON, DECLINED };

typedef struct {
    struct mmsghdr recv[BATCH], send[BATCH];
    struct iovec riov[BATCH], siov[BATCH];
    struct sockaddr_storage addr[BATCH];
    unsigned char data[BATCH][RECV_SIZE];
    unsigned char reply[BATCH][REPLY_SIZE];
    Py_ssize_t reply_len[BATCH];
    PyObject *reply_obj[BATCH]; /* a reply built by Python */
    int state[BATCH], slip[BATCH];
} Slots;

static Slots *slots; /* one reactor thread, holding the GIL: one set of buffers */

/* The client's address as Python's recvfrom gives it (addr[0]). */
static PyObject *host_of(const struct sockaddr_storage *ss) {
    char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        if (!inet_ntop(AF_INET, &s4->sin_addr, text, sizeof text)) return NULL;
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        if (!inet_ntop(AF_INET6, &s6->sin6_addr, text, INET6_ADDRSTRLEN)) return NULL;
        char name[IF_NAMESIZE];
        if (s6->sin6_scope_id && if_indextoname(s6->sin6_scope_id, name)) {
            strcat(text, "%");
            strcat(text, name);
        }
    } else {
        return PyUnicode_FromString("");
    }
    return PyUnicode_FromString(text);
}

/* serve(fd, max_packets, check, slip_reply, decline) -> (received, errors, limited, slipped)
 *
 * Reads up to max_packets datagrams (UDP_READ_BATCH fairness) in batches: the
 * rate limiter's verdicts first (check: None when off), then the C answers
 * while the index is exported, then decline(data, host) for the rest once it
 * is released, then one sendmmsg for the batch. */
static PyObject *engine_serve(Engine *e, PyObject *args) {
    int fd;
    long max_packets;
    PyObject *check, *slip, *decline;
    if (!PyArg_ParseTuple(args, "ilOOO", &fd, &max_packets, &check, &slip, &decline)) return NULL;
    if (slots == NULL && (slots = PyMem_Calloc(1, sizeof(Slots))) == NULL) return PyErr_NoMemory();
    Slots *s = slots;
    long received = 0, errors = 0, limited = 0, slipped = 0, taken = 0;
    while (taken < max_packets) {
        int want = max_packets - taken < BATCH ? (int)(max_packets - taken) : BATCH;
        for (int i = 0; i < want; i++) {
            s->riov[i] = (struct iovec){s->data[i], RECV_SIZE};
            s->recv[i].msg_hdr = (struct msghdr){.msg_name = &s->addr[i],
                                                 .msg_namelen = sizeof s->addr[i],
                                                 .msg_iov = &s->riov[i],
                                                 .msg_iovlen = 1};
        }
        int got = recvmmsg(fd, s->recv, want, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
            errors++; /* ICMP errors from earlier sends surface here */
            taken++;
            continue;
        }
        if (got == 0) break;
        taken += got;
        received += got;
        for (int i = 0; i < got; i++) {
            s->state[i] = DECLINED;
            s->slip[i] = 0;
            s->reply_obj[i] = NULL;
        }
        if (check != Py_None) { /* the limiter's verdict per packet, in arrival order */
            for (int i = 0; i < got; i++) {
                PyObject *host = host_of(&s->addr[i]);
                PyObject *r = host ? PyObject_CallOneArg(check, host) : NULL;
                Py_XDECREF(host);
                long verdict = r ? PyLong_AsLong(r) : -1;
                Py_XDECREF(r);
                if (verdict == -1 && PyErr_Occurred()) {
                    PyErr_Clear();
                    errors++; /* an address the limiter cannot parse: answer it */
                    continue;
                }
                if (!verdict) continue;
                s->state[i] = SKIP;
                PyObject *reply = NULL;
                if (verdict == 2) { /* SLIP */
                    PyObject *data = PyBytes_FromStringAndSize((char *)s->data[i],
                                                               s->recv[i].msg_len);
                    reply = data ? PyObject_CallOneArg(slip, data) : NULL;
                    Py_XDECREF(data);
                    if (reply == NULL) PyErr_Clear();
                }
                if (reply != NULL && PyBytes_Check(reply)) {
                    s->state[i] = PYTHON;
                    s->reply_obj[i] = reply;
                    s->slip[i] = 1;
                } else {
                    Py_XDECREF(reply);
                    limited++;
                }
            }
        }
        for (int i = 0; i < got; i++) {
            if (s->state[i] != DECLINED) continue;
            Py_ssize_t n = answer(e, s->data[i], s->recv[i].msg_len, s->reply[i]);
            if (n >= 0) {
                s->state[i] = MINE;
                s->reply_len[i] = n;
            }
        }
        finish_batch(e); /* the index is free to change again */
        for (int i = 0; i < got; i++) {
            if (s->state[i] != DECLINED) continue;
            s->state[i] = SKIP;
            PyObject *data = PyBytes_FromStringAndSize((char *)s->data[i], s->recv[i].msg_len);
            PyObject *host = data ? host_of(&s->addr[i]) : NULL;
            PyObject *reply = host ? PyObject_CallFunctionObjArgs(decline, data, host, NULL) : NULL;
            Py_XDECREF(data);
            Py_XDECREF(host);
            if (reply == NULL) {
                PyErr_Clear();
                errors++; /* a bug in the Python path: drop this packet, keep serving */
            } else if (PyBytes_Check(reply)) {
                s->state[i] = PYTHON;
                s->reply_obj[i] = reply;
            } else {
                Py_DECREF(reply); /* None: stay silent */
            }
        }
        int out = 0, index[BATCH];
        for (int i = 0; i < got; i++) {
            if (s->state[i] == SKIP) continue;
            if (s->state[i] == MINE) {
                s->siov[out] = (struct iovec){s->reply[i], s->reply_len[i]};
            } else {
                s->siov[out] = (struct iovec){PyBytes_AS_STRING(s->reply_obj[i]),
                                              PyBytes_GET_SIZE(s->reply_obj[i])};
            }
            s->send[out].msg_hdr = (struct msghdr){.msg_name = &s->addr[i],
                                                   .msg_namelen = s->recv[i].msg_hdr.msg_namelen,
                                                   .msg_iov = &s->siov[out],
                                                   .msg_iovlen = 1};
            index[out++] = i;
        }
        for (int k = 0; k < out;) {
            int sent = sendmmsg(fd, s->send + k, out - k, MSG_DONTWAIT);
            if (sent < 0 && errno == EINTR) continue;
            if (sent <= 0) { /* a full socket buffer or a bad address: drop this one */
                errors++;
                k++;
                continue;
            }
            for (int m = k; m < k + sent; m++) slipped += s->slip[index[m]];
            k += sent;
        }
        for (int i = 0; i < got; i++) Py_CLEAR(s->reply_obj[i]);
        if (got < want) break; /* the socket is drained */
    }
    if (flush_counts(e) < 0) return NULL;
    return Py_BuildValue("llll", received, errors, limited, slipped);
}

static PyMethodDef engine_methods[] = {
    {"answer", (PyCFunction)engine_answer, METH_O,
     "answer(query) -> reply bytes, or None to leave the query to the Python path"},
    {"serve", (PyCFunction)engine_serve, METH_VARARGS,
     "serve(fd, max_packets, check, slip_reply, decline) -> (received, errors, limited, slipped)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rbl.dnsserver._hotpath.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Answers the common UDP queries of a set of zones (see hotpath.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)engine_init,
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_methods = engine_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hotpath", "The compiled UDP hot path of rbl.", -1, NULL,
};

PyMODINIT_FUNC PyInit__hotpath(void) {
    if (!(s_levels = PyUnicode_InternFromString("_levels")) ||
        !(s_prefixlen = PyUnicode_InternFromString("prefixlen")) ||
        !(s_overlay = PyUnicode_InternFromString("overlay")) ||
        !(s_keys = PyUnicode_InternFromString("keys")) ||
        !(s_vals = PyUnicode_InternFromString("vals")) ||
        !(s_directory = PyUnicode_InternFromString("directory")))
        return NULL;
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Engine", (PyObject *)&EngineType) < 0 ||
        PyModule_AddIntConstant(m, "BATCH", BATCH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
