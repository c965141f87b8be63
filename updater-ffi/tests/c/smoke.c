/* Links against libabupdater as a device's own software would: versions, check, install with
 * progress, status, and the failures a caller must be able to tell apart. */
#include <stdio.h>
#include <string.h>

#include "abupdater.h"

struct seen {
  unsigned calls;
  int read_back;
};

static void on_progress(const char *step, uint64_t done, uint64_t total, void *user) {
  struct seen *seen = user;
  seen->calls++;
  if (strcmp(step, "read-back") == 0 && done == total) seen->read_back = 1;
}

#define EXPECT(cond)                                                              \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "smoke.c:%d: %s (last error: %s)\n", __LINE__, #cond,       \
              abu_last_error());                                                  \
      return 1;                                                                   \
    }                                                                             \
  } while (0)

int main(int argc, char **argv) {
  EXPECT(argc == 3);
  const char *config = argv[1], *bundle = argv[2];
  printf("libabupdater %s\n", abu_version());

  EXPECT(abu_open("/nonexistent/system.toml") == NULL);
  EXPECT(strstr(abu_last_error(), "/nonexistent/system.toml") != NULL);

  AbuHandle *h = abu_open(config);
  EXPECT(h != NULL);

  char *health = abu_health_json(h);
  EXPECT(health != NULL);
  EXPECT(strstr(health, "\"booted\":\"A\"") != NULL);
  abu_free_string(health);

  EXPECT(abu_check_json(h) == NULL);
  EXPECT(strstr(abu_last_error(), "no [fleet] url") != NULL);
  EXPECT(abu_cancel(h) == 1);

  EXPECT(abu_install(h, "/nonexistent/bundle.zst", NULL, NULL) == 7);
  EXPECT(strstr(abu_last_error(), "opening bundle /nonexistent/bundle.zst") != NULL);
  EXPECT(abu_install(h, NULL, NULL, NULL) == ABU_EINVAL);
  EXPECT(strstr(abu_last_error(), "source is NULL") != NULL);
  EXPECT(abu_install(NULL, NULL, NULL, NULL) == ABU_EINVAL);
  EXPECT(strstr(abu_last_error(), "handle is NULL") != NULL);

  struct seen seen = {0, 0};
  int rc = abu_install(h, bundle, on_progress, &seen);
  EXPECT(rc == 0);
  EXPECT(seen.calls > 0 && seen.read_back);

  char *status = abu_status_json(h);
  EXPECT(status != NULL);
  EXPECT(strstr(status, "\"state\":\"ready-to-reboot\"") != NULL);
  EXPECT(strstr(status, "\"percent\":100") != NULL);
  abu_free_string(status);

  health = abu_health_json(h);
  EXPECT(strstr(health, "\"next\":\"B\"") != NULL);
  abu_free_string(health);

  abu_close(h);
  printf("ok: %u progress calls\n", seen.calls);
  return 0;
}
