/* The pod sandbox's placeholder process: sleeps until SIGTERM or SIGINT and
 * exits 0; reaps children re-parented to it when the pod shares one PID
 * namespace. Built statically by hack/images.sh. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, 0, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction on_stop = {.sa_handler = stop};
  struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  sigemptyset(&on_stop.sa_mask);
  sigemptyset(&on_child.sa_mask);
  if (sigaction(SIGTERM, &on_stop, 0) || sigaction(SIGINT, &on_stop, 0) || sigaction(SIGCHLD, &on_child, 0)) {
    return 1;
  }
  for (;;) {
    pause();
  }
}
