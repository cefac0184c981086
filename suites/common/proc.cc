#include "proc.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ublkcheck {

using Clock = std::chrono::steady_clock;

std::string shell_quote(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a.find_first_of(" '\"$") == std::string::npos ? a : "'" + a + "'";
  }
  return s;
}

std::string ProcResult::describe() const {
  std::string s = "exit " + std::to_string(status) + (timed_out ? " (TIMED OUT)" : "");
  if (!err.empty()) s += "; stderr: " + err.substr(0, 2000);
  if (!out.empty()) s += "; stdout: " + out.substr(0, 1000);
  return s;
}

namespace {

pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, int* out_fd,
            int* err_fd) {
  int o[2], e[2];
  if (pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // own group: a timeout kills the whole tree (fio forks its jobs)
    dup2(o[1], 1);
    dup2(e[1], 2);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    for (const auto& kv : env) putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    dprintf(2, "exec %s: %s\n", a[0], strerror(errno));
    _exit(127);
  }
  close(o[1]);
  close(e[1]);
  *out_fd = o[0];
  *err_fd = e[0];
  return pid;
}

// Drains both pipes until EOF, the child exits, or the deadline passes.
int collect(pid_t pid, int out_fd, int err_fd, Clock::time_point deadline, ProcResult* r) {
  struct pollfd p[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  int open_fds = 2;
  char buf[8192];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      r->timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      break;
    }
    int n = poll(p, 2, int(std::min<long>(left.count(), 200)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t got = read(p[i].fd, buf, sizeof(buf));
      if (got <= 0) {
        p[i].fd = -1;
        open_fds--;
      } else {
        (i ? r->err : r->out).append(buf, size_t(got));
      }
    }
  }
  int st = 0;
  if (r->timed_out) {
    waitpid(pid, &st, 0);
  } else {
    // Pipes closed; the child may still be exiting (or a grandchild kept them: bounded).
    while (waitpid(pid, &st, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        r->timed_out = true;
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        break;
      }
      usleep(5000);
    }
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace

std::optional<int> call_in_child(const std::function<int()>& fn, std::chrono::milliseconds timeout) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return std::nullopt;
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    // Not the test's stdout/stderr: a child stuck in the kernel must not keep the pipes
    // the agent reads to EOF open.
    int null = open("/dev/null", O_RDWR);
    dup2(null, 1);
    dup2(null, 2);
    int r = fn();
    if (write(p[1], &r, sizeof(r)) != sizeof(r)) _exit(1);
    _exit(0);
  }
  close(p[1]);
  std::optional<int> out;
  pollfd pf{p[0], POLLIN, 0};
  int r = 0;
  if (pid > 0 && poll(&pf, 1, int(timeout.count())) == 1 && read(p[0], &r, sizeof(r)) == sizeof(r)) out = r;
  close(p[0]);
  if (pid > 0) {
    if (!out) kill(pid, SIGKILL);
    // An uninterruptible wait (6.1's DEL_DEV) survives SIGKILL: give up on reaping it
    // after a second rather than block the test; it dies with the kernel's wait.
    for (int i = 0; i < 100 && waitpid(pid, nullptr, WNOHANG) == 0; i++) usleep(10000);
  }
  return out;
}

ProcResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
               const std::vector<std::string>& extra_env) {
  ProcResult r;
  int o = -1, e = -1;
  pid_t pid = spawn(argv, extra_env, &o, &e);
  if (pid < 0) {
    r.err = std::string("spawn failed: ") + strerror(errno);
    return r;
  }
  r.status = collect(pid, o, e, Clock::now() + timeout, &r);
  close(o);
  close(e);
  return r;
}

Background::Background(const std::vector<std::string>& argv) { pid_ = spawn(argv, {}, &out_fd_, &err_fd_); }

bool Background::running() {
  if (reaped_ || pid_ < 0) return false;
  int st = 0;
  if (waitpid(pid_, &st, WNOHANG) == pid_) {
    reaped_ = true;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

ProcResult Background::wait(std::chrono::milliseconds timeout) {
  ProcResult r;
  if (pid_ < 0) return r;
  if (reaped_) {
    // Exited already: drain what it wrote.
    char buf[8192];
    ssize_t n;
    fcntl(out_fd_, F_SETFL, O_NONBLOCK);
    fcntl(err_fd_, F_SETFL, O_NONBLOCK);
    while ((n = read(out_fd_, buf, sizeof(buf))) > 0) r.out.append(buf, size_t(n));
    while ((n = read(err_fd_, buf, sizeof(buf))) > 0) r.err.append(buf, size_t(n));
    r.status = status_;
  } else {
    r.status = collect(pid_, out_fd_, err_fd_, Clock::now() + timeout, &r);
    reaped_ = true;
  }
  close(out_fd_);
  close(err_fd_);
  out_fd_ = err_fd_ = -1;
  pid_ = -1;
  return r;
}

Background::~Background() {
  if (pid_ > 0 && !reaped_) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (out_fd_ >= 0) close(out_fd_);
  if (err_fd_ >= 0) close(err_fd_);
}

bool have_program(const std::string& program) {
  return run({"sh", "-c", "command -v " + shell_quote({program})}, std::chrono::seconds(5)).status == 0;
}

}  // namespace ublkcheck
