#include "store/postgres/test_server.h"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace hutch::store::testing {

namespace {

namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string Tail(const std::string& s, size_t n = 2000) {
  return s.size() <= n ? s : s.substr(s.size() - n);
}

// The directory holding initdb and postgres.
std::string FindBindir() {
  if (FILE* p = popen("pg_config --bindir 2>/dev/null", "r")) {
    char buf[512] = {};
    std::string out;
    while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
    pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    if (!out.empty() && access((out + "/initdb").c_str(), X_OK) == 0) return out;
  }
  // pg_config comes with libpq-dev; the server's own directory is versioned.
  std::string best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    std::string bin = e.path().string() + "/bin";
    int version = std::atoi(e.path().filename().c_str());
    if (version > best_version && access((bin + "/initdb").c_str(), X_OK) == 0) {
      best = bin;
      best_version = version;
    }
  }
  return best;
}

// Forks and execs argv as uid/gid with stdout and stderr appended to `log`. The child gets
// `death_signal` when this process dies, so a crashed test leaves no server behind.
// Between fork and exec only async-signal-safe calls.
Result<pid_t> SpawnAs(const std::vector<std::string>& argv, uid_t uid, gid_t gid,
                      const std::string& log, int death_signal) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const bool change_user = geteuid() == 0;
  pid_t pid = fork();
  if (pid < 0) return Internal(fmt::format("fork for {}: {}", argv[0], strerror(errno)));
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(126);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    setsid();  // its own process group: a ^C at the terminal reaches it through us only
    if (change_user) {
      if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(125);
    }
    // After setuid, which clears it.
    prctl(PR_SET_PDEATHSIG, death_signal);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

Result<int> Wait(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Internal(fmt::format("waitpid: {}", strerror(errno)));
  }
  return status;
}

}  // namespace

std::string DatabaseNameFor(std::string_view text) {
  std::string out = "hutch_";
  for (char ch : text) {
    if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
      out += ch;
    } else if (ch >= 'A' && ch <= 'Z') {
      out += static_cast<char>(ch - 'A' + 'a');
    } else {
      out += '_';
    }
  }
  // PostgreSQL truncates identifiers at 63 bytes; keep the end, where temp names differ.
  if (out.size() > 63) out = "hutch_" + out.substr(out.size() - 57);
  return out;
}

Result<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  std::unique_ptr<PostgresServer> s(new PostgresServer);
  s->bindir_ = FindBindir();
  if (s->bindir_.empty())
    return Unavailable(
        "PostgreSQL is not installed: no initdb from pg_config --bindir or in "
        "/usr/lib/postgresql/*/bin (scripts/setup installs it)");
  s->uid_ = geteuid();
  s->gid_ = getegid();
  if (s->uid_ == 0) {
    struct passwd* pw = getpwnam("postgres");
    if (pw == nullptr)
      return Unavailable("running as root, and there is no postgres user to run initdb as");
    s->uid_ = pw->pw_uid;
    s->gid_ = pw->pw_gid;
  }
  std::string tmpl = (fs::temp_directory_path() / "hutch-pg-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr)
    return Internal(fmt::format("mkdtemp {}: {}", tmpl, strerror(errno)));
  s->dir_ = tmpl;
  for (const char* sub : {"/data", "/sock"}) {
    std::string p = s->dir_ + sub;
    if (mkdir(p.c_str(), 0700) != 0) return Internal(fmt::format("mkdir {}", p));
    if (chown(p.c_str(), s->uid_, s->gid_) != 0) return Internal(fmt::format("chown {}", p));
  }
  if (chown(s->dir_.c_str(), s->uid_, s->gid_) != 0)
    return Internal(fmt::format("chown {}", s->dir_));

  const std::string log = s->dir_ + "/postgres.log";
  // --no-sync: a test cluster need not survive a power cut.
  ASSIGN_OR_RETURN(pid_t initdb,
                   SpawnAs({s->bindir_ + "/initdb", "-D", s->dir_ + "/data", "-U", "postgres", "-A",
                            "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"},
                           s->uid_, s->gid_, log, SIGKILL));
  ASSIGN_OR_RETURN(int status, Wait(initdb));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Internal(fmt::format("initdb failed (status {}): {}", status, Tail(ReadFile(log))));
  RETURN_IF_ERROR(s->Spawn());
  return s;
}

Status PostgresServer::Spawn() {
  const std::string log = dir_ + "/postgres.log";
  // No TCP at all (listen_addresses empty): the socket directory is private to this server, so
  // the default port number is only a file name in it and cannot clash with anything.
  // fsync off: test data need not survive a power cut, and the tests run many fsyncs.
  // SIGQUIT on our death: the postmaster's immediate shutdown, which takes its backends along.
  ASSIGN_OR_RETURN(pid_, SpawnAs({bindir_ + "/postgres", "-D", dir_ + "/data", "-k", dir_ + "/sock",
                                  "-c", "listen_addresses=", "-c", "fsync=off", "-c",
                                  "max_connections=300", "-c", "shared_buffers=32MB"},
                                 uid_, gid_, log, SIGQUIT));
  const std::string conninfo = fmt::format("host={}/sock user=postgres dbname=postgres", dir_);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (PQping(conninfo.c_str()) != PQPING_OK) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Internal(
          fmt::format("postgres exited at start (status {}): {}", status, Tail(ReadFile(log))));
    }
    if (std::chrono::steady_clock::now() > deadline)
      return Internal(
          fmt::format("postgres did not accept connections in 60 s: {}", Tail(ReadFile(log))));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::Ok();
}

Status PostgresServer::Stop() {
  if (pid_ <= 0) return Status::Ok();
  kill(pid_, SIGINT);  // fast shutdown: roll back open transactions, close connections
  ASSIGN_OR_RETURN(int status, Wait(pid_));
  (void)status;
  pid_ = -1;
  return Status::Ok();
}

Status PostgresServer::Restart() {
  RETURN_IF_ERROR(Stop());
  return Spawn();
}

PostgresServer::~PostgresServer() {
  if (Status st = Stop(); !st.ok())
    std::fprintf(stderr, "stop postgres: %s\n", st.message().c_str());
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string PostgresServer::Url(std::string_view db) const {
  return fmt::format("postgres:///{}?host={}/sock&user=postgres", db, dir_);
}

namespace {

Status AdminExec(const std::string& dir, const std::string& sql, const char* ok_state) {
  const std::string conninfo = fmt::format("host={}/sock user=postgres dbname=postgres", dir);
  std::unique_ptr<PGconn, decltype(&PQfinish)> c(PQconnectdb(conninfo.c_str()), &PQfinish);
  if (PQstatus(c.get()) != CONNECTION_OK)
    return Unavailable(fmt::format("connect to the test postgres: {}", PQerrorMessage(c.get())));
  std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c.get(), sql.c_str()), &PQclear);
  if (PQresultStatus(r.get()) == PGRES_COMMAND_OK) return Status::Ok();
  const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
  if (ok_state != nullptr && state != nullptr && std::string_view(state) == ok_state)
    return Status::Ok();
  return Internal(fmt::format("{}: {}", sql, PQresultErrorMessage(r.get())));
}

}  // namespace

Result<std::string> PostgresServer::CreateDatabase(std::string_view db) {
  // 42P04: duplicate_database.
  RETURN_IF_ERROR(AdminExec(dir_, fmt::format("CREATE DATABASE \"{}\"", db), "42P04"));
  return Url(db);
}

Status PostgresServer::DropDatabase(std::string_view db) {
  return AdminExec(dir_, fmt::format("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", db), nullptr);
}

Result<PostgresServer*> SharedPostgres() {
  static std::mutex mu;
  static std::unique_ptr<PostgresServer> server;
  static Status failed = Status::Ok();
  std::lock_guard lock(mu);
  if (server) return server.get();
  if (!failed.ok()) return failed;
  auto started = PostgresServer::Start();
  if (!started.ok()) {
    failed = started.status();
    return failed;
  }
  server = std::move(started).value();
  return server.get();
}

}  // namespace hutch::store::testing
