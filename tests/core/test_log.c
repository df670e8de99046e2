/* core/log: log.file and its reopen (what logrotate needs: records after the
 * reopen go to the new file, none is lost or split), and the journal's
 * format (priority prefix, no timestamp of its own). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log/log.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[8][8192];
    static unsigned next;
    char *b = buf[next++ % 8];
    size_t n = fread(b, 1, 8191, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

static void file_and_reopen(void **state)
{
    (void)state;
    char dir[] = "/tmp/rf_log.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], rotated[128];
    snprintf(path, sizeof(path), "%s/ringflowd.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/ringflowd.log.1", dir);
    rf_err err = {0};
    assert_int_equal(rf_log_reopen(&err), 0); /* stderr: nothing to reopen */
    assert_int_equal(rf_log_open_file(path, &err), 0);
    assert_string_equal(rf_log_file(), path);
    rf_log_info("test", "before rotation");
    /* logrotate: rename, then ask for a reopen. */
    assert_int_equal(rename(path, rotated), 0);
    rf_log_info("test", "between rename and reopen");
    assert_int_equal(rf_log_reopen(&err), 0);
    rf_log_info("test", "after reopen");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    const char *old = slurp(rotated), *now = slurp(path);
    assert_non_null(strstr(old, "msg=\"before rotation\""));
    assert_non_null(strstr(old, "msg=\"between rename and reopen\""));
    assert_null(strstr(old, "after reopen"));
    assert_non_null(strstr(now, "level=info component=test msg=\"after reopen\"\n"));
    assert_non_null(strstr(now, "ts="));

    /* A reopen that fails keeps the old file. */
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(rf_log_reopen(&err), -ENOENT);
    assert_non_null(strstr(err.msg, "log.file"));
    rf_log_set_fd(2);
}

static void journal_format(void **state)
{
    (void)state;
    char path[] = "/tmp/rf_log_j.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    rf_log_set_fd(fd);
    rf_log_set_journal(true);
    rf_log_warn("ingest", "a warning");
    rf_log_error("ingest", "an error");
    rf_log_set_journal(false);
    rf_log_set_fd(2);
    close(fd);
    const char *text = slurp(path);
    assert_string_equal(text, "<4>level=warn component=ingest msg=\"a warning\"\n"
                              "<3>level=error component=ingest msg=\"an error\"\n");
    unlink(path);

    /* stderr is the journal only when JOURNAL_STREAM names its inode. */
    struct stat st;
    assert_int_equal(fstat(2, &st), 0);
    char js[64];
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    assert_true(rf_log_stderr_is_journal());
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", js, 1);
    assert_false(rf_log_stderr_is_journal());
    unsetenv("JOURNAL_STREAM");
    assert_false(rf_log_stderr_is_journal());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(file_and_reopen),
        cmocka_unit_test(journal_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
