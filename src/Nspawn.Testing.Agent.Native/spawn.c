/*
 * The native agent's process start: the command's first process is created inside its own cgroup (clone3 with
 * CLONE_INTO_CGROUP, cgroup2), takes the user's groups and ids, its folder and its standard streams, and becomes the
 * command, without the /bin/sh and setpriv hops of the managed agent (a shell's start, and a cgroup.procs write,
 * which migrates a process: the kernel's slowest part of it). The child shares the agent's memory until it execs
 * (CLONE_VM | CLONE_VFORK, as posix_spawn does: a fork of the agent's mappings took over a millisecond), on a stack
 * of its own, with every signal blocked until it has reset their handlers; it makes only system calls, which is why
 * this part is C and not C#. A failure before the command runs is left in the request (which step, errno).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/* The kernel's struct clone_args up to cgroup (CLONE_ARGS_SIZE_VER2). */
struct nspawn_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

enum { STEP_STREAMS = 1, STEP_CHDIR = 2, STEP_IDS = 3, STEP_EXEC = 4 };

/* What to run; all prepared by the parent, so that the child only makes system calls. */
struct nspawn_spawn_request {
    const char *const *argv;      /* the command, NULL-terminated */
    const char *const *envp;      /* its environment, NULL-terminated */
    const char *path;             /* PATH to search when argv[0] has no '/' */
    const char *cwd;
    const char **sh_argv;         /* argv with two slots before it: /bin/sh runs a file without #! (ENOEXEC), as a shell would */
    int32_t cgroup_fd;
    int32_t set_ids;
    uint32_t uid, gid;
    const uint32_t *groups;
    int32_t group_count;
    int32_t stdin_fd, stdout_fd, stderr_fd;
    /* Set by a child that could not become the command: which step, errno. */
    volatile int32_t failed_step, failed_error;
};

/*
 * The child's stack: the PATH search's buffer and little else. One for all starts, taken in turn (a start holds it only
 * until its child execs): no mmap, munmap and fresh pages per command.
 */
enum { CHILD_STACK = 64 * 1024 };
static char child_stack[CHILD_STACK] __attribute__((aligned(64)));
static pthread_mutex_t child_stack_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * clone3 whose child runs fn(arg) on the stack that args gives (it cannot return into its parent's frames), then
 * exits 127 should fn return. Returns what clone3 returns to the parent.
 */
__attribute__((naked)) static long clone3_run(struct nspawn_clone_args *args, size_t size, void (*fn)(void *), void *arg)
{
#if defined(__x86_64__)
    __asm__ volatile(
        "mov %rdx, %r8\n"
        "mov %rcx, %r9\n"
        "mov $435, %eax\n"
        "syscall\n"
        "test %rax, %rax\n"
        "jnz 1f\n"
        "xor %ebp, %ebp\n"
        "mov %r9, %rdi\n"
        "call *%r8\n"
        "mov $60, %eax\n"
        "mov $127, %edi\n"
        "syscall\n"
        "hlt\n"
        "1: ret\n");
#elif defined(__aarch64__)
    __asm__ volatile(
        "mov x9, x2\n"
        "mov x10, x3\n"
        "mov x8, #435\n"
        "svc #0\n"
        "cbnz x0, 1f\n"
        "mov x29, #0\n"
        "mov x0, x10\n"
        "blr x9\n"
        "mov x8, #93\n"
        "mov x0, #127\n"
        "svc #0\n"
        "1: ret\n");
#else
#error "clone3_run: x86_64 and aarch64 only"
#endif
}

static void report(struct nspawn_spawn_request *request, int step, int error)
{
    request->failed_error = error;
    request->failed_step = step;
    _exit(127);
}

static void exec_one(const char *file, const struct nspawn_spawn_request *request)
{
    execve(file, (char *const *)request->argv, (char *const *)request->envp);
    if (errno == ENOEXEC) {
        request->sh_argv[0] = "/bin/sh";
        request->sh_argv[1] = file;
        execve("/bin/sh", (char *const *)request->sh_argv, (char *const *)request->envp);
        errno = ENOEXEC;
    }
}

/* execvpe with the command's own PATH (glibc's searches the caller's): EACCES wins over ENOENT, as in a shell. */
static int exec_search(const struct nspawn_spawn_request *request)
{
    const char *name = request->argv[0];
    if (strchr(name, '/') != NULL || request->path == NULL) {
        exec_one(name, request);
        return errno;
    }
    size_t name_length = strlen(name);
    int denied = 0;
    char file[4096];
    for (const char *dir = request->path;; ) {
        const char *end = strchrnul(dir, ':');
        size_t dir_length = (size_t)(end - dir);
        if (dir_length + 1 + name_length + 1 <= sizeof file) {
            memcpy(file, dir, dir_length);
            size_t at = dir_length;
            if (at > 0)
                file[at++] = '/';
            memcpy(file + at, name, name_length + 1);
            exec_one(file, request);
            if (errno == EACCES)
                denied = 1;
            else if (errno != ENOENT && errno != ENOTDIR)
                return errno;
        }
        if (*end == '\0')
            break;
        dir = end + 1;
    }
    return denied ? EACCES : ENOENT;
}

static void become_command(void *arg)
{
    struct nspawn_spawn_request *request = arg;
    /*
     * The agent's handlers go (none may run in this child, which shares its memory; exec would reset them anyway), but
     * what it ignores stays ignored, as .NET's Process leaves it to the shell's way (ShellCommand) and as systemd starts
     * a service: SIGPIPE ignored (IgnoreSIGPIPE=yes, the agent's unit's default), every other signal default.
     */
    struct sigaction default_action, current;
    memset(&default_action, 0, sizeof default_action);
    default_action.sa_handler = SIG_DFL;
    for (int signal = 1; signal < NSIG; signal++) {
        if (signal == SIGKILL || signal == SIGSTOP || sigaction(signal, NULL, &current) < 0)
            continue;
        if (!(current.sa_flags & SA_SIGINFO) && (current.sa_handler == SIG_IGN || current.sa_handler == SIG_DFL))
            continue;
        sigaction(signal, &default_action, NULL);
    }
    sigset_t none;
    sigemptyset(&none);

    /*
     * A source on 0-2 (the agent's own 0-2 closed, so that pipe2 handed them out) would be overwritten by an earlier
     * dup2 before it is copied: each such one is copied above 2 first (close-on-exec, gone at exec).
     */
    int from[3] = { request->stdin_fd, request->stdout_fd, request->stderr_fd };
    for (int i = 0; i < 3; i++)
        if (from[i] < 3 && (from[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 3)) < 0)
            report(request, STEP_STREAMS, errno);
    for (int target = 0; target < 3; target++)
        if (dup2(from[target], target) < 0)
            report(request, STEP_STREAMS, errno);
    /* The folder as root, as the managed agent enters it before it drops to the user. */
    if (request->cwd != NULL && chdir(request->cwd) < 0)
        report(request, STEP_CHDIR, errno);
    /* The system calls themselves: glibc's wrappers would ask every thread of the agent, whose memory the child shares, to change too. */
    if (request->set_ids) {
        if (syscall(SYS_setgroups, (size_t)request->group_count, request->groups) < 0 || syscall(SYS_setresgid, request->gid, request->gid, request->gid) < 0
            || syscall(SYS_setresuid, request->uid, request->uid, request->uid) < 0)
            report(request, STEP_IDS, errno);
    }
    sigprocmask(SIG_SETMASK, &none, NULL);
    report(request, STEP_EXEC, exec_search(request));
}

/*
 * Starts the command; returns its pid (> 0) and a pidfd of it in *pidfd (close-on-exec), or -errno where it could not
 * (then *step says where: 0 when no process was made, and the caller may fall back to another way; *pidfd is -1). The
 * child is the caller's to reap, and is reaped here when it failed before the command ran. The pidfd names this process
 * only, even once its pid is another's: the caller's kill (nspawn_kill) cannot hit a stranger.
 */
int nspawn_spawn(struct nspawn_spawn_request *request, int32_t *step, int32_t *pidfd)
{
    *step = 0;
    *pidfd = -1;
    request->failed_step = 0;
    request->failed_error = 0;
    /* No signal handler of the runtime may run in the child, which shares its memory: blocked across the clone, reset in the child. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    struct nspawn_clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    /*
     * No SIGCHLD: the caller polls the pidfd, which is readable once the child ended, and reaps it (__WALL). A signal
     * would only wake the runtime's threads (its handler, its SIGCHLD thread, a pool thread) for nothing, and the
     * runtime's own wait for its children never sees such a child.
     */
    args.exit_signal = 0;
    args.stack = (uint64_t)(uintptr_t)child_stack;
    args.stack_size = CHILD_STACK;
    if (request->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)request->cgroup_fd;
    }
    /* Back once the child has exec'd or exited (CLONE_VFORK): then the stack is free for the next. */
    pthread_mutex_lock(&child_stack_lock);
    long pid = clone3_run(&args, sizeof args, become_command, request);
    pthread_mutex_unlock(&child_stack_lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        *pidfd = -1;
        return (int)pid;
    }
    if (request->failed_step == 0)
        return (int)pid;
    int status;
    while (waitpid((pid_t)pid, &status, __WALL) < 0 && errno == EINTR)
        ;
    close(*pidfd);
    *pidfd = -1;
    *step = request->failed_step;
    /* Never 0, which the caller would take for a pid (and waitpid(0) reaps any child of the group). */
    return -(request->failed_error ? request->failed_error : EIO);
}

/* Sends signal to the process of pidfd: 0, or -errno (ESRCH once it ended). */
int nspawn_kill(int pidfd, int signal)
{
    return syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0) < 0 ? -errno : 0;
}

/* The command's exit code once its first process ended (reaped; a child without SIGCHLD needs __WALL), -1 while it runs, -2 where it is not our child. */
int nspawn_try_wait(int pid)
{
    int status;
    pid_t reaped;
    while ((reaped = waitpid(pid, &status, WNOHANG | __WALL)) < 0)
        if (errno != EINTR)
            return -2;
    if (reaped == 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255;
}
