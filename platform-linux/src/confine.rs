//! Confining the network process on Linux: the counterpart of its
//! `pledge("stdio inet")` on OpenBSD, as a seccomp filter.
//!
//! The network process talks to its peers, its kernel sockets and the
//! privileged process over descriptors it holds; it never needs to run a
//! program, open or create a file, trace a process, mount, change
//! namespaces or load kernel code. The filter refuses exactly those
//! system calls with `EPERM` ([`DENIED`]) and allows the rest.
//!
//! Why a deny list and not pledge's allow list: an allow list must name
//! every call the poll loop, the allocator and libc make, which differ by
//! libc version and change with the loop itself (being reworked now);
//! a call it forgot kills the daemon in the field (`SIGSYS`), found by no
//! test that did not take that path. A deny list of what the process must
//! never do fails safe: a denied call returns `EPERM`, which the code
//! already handles as an error. A system call of another ABI (x32 on
//! x86_64) is refused too, and a filter run for another architecture
//! kills the process: the numbers would mean other calls.
//!
//! Why no Landlock: its filesystem rules would forbid what the empty
//! chroot and the unprivileged user already leave the process no way to
//! reach, and the denied `open`/`openat` calls above forbid opening
//! anything at all; its network rules (Landlock ABI 4, Linux 6.7, which
//! could restrict `connect` and `bind` to the peers' and the listening
//! ports) are missing from the kernels of Debian 12 (6.1) and RHEL 9
//! (5.14), where gateways run, so they would protect nothing there.
//!
//! No crate: the filter is a few dozen BPF instructions built here as
//! data (unit-tested) and installed with two `prctl(2)` calls.

use std::io;

/// The system calls the network process is refused (`EPERM`).
pub const DENIED: &[libc::c_long] = &[
    // Running programs.
    libc::SYS_execve,
    libc::SYS_execveat,
    // Opening or making files (every descriptor it needs is open).
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_creat,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_mknod,
    libc::SYS_mknodat,
    // Other processes' memory.
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    // Mounts, roots and namespaces.
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    // Kernel code.
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_bpf,
    // Swap and reboot.
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
];

/// `AUDIT_ARCH_*` of this build: the filter checks the calling ABI first.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// x32 system calls on x86_64 carry this bit.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter: check the ABI, refuse [`DENIED`] (and x32) with `EPERM`,
/// allow the rest.
pub fn filter() -> Vec<libc::sock_filter> {
    let deny = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let mut p = vec![
        ins(BPF_LD_W_ABS, 0, 0, DATA_ARCH),
        ins(BPF_JEQ_K, 1, 0, AUDIT_ARCH),
        ins(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        ins(BPF_LD_W_ABS, 0, 0, DATA_NR),
    ];
    // Check k (0: the x32 bit, then DENIED) jumps over the checks after
    // it and the "allow" to the final "deny".
    let checks = DENIED.len() + 1;
    let jump = |k: usize| u8::try_from(checks - k).unwrap_or(u8::MAX);
    p.push(ins(BPF_JGE_K, jump(0), 0, X32_SYSCALL_BIT));
    for (i, &nr) in DENIED.iter().enumerate() {
        p.push(ins(BPF_JEQ_K, jump(i + 1), 0, nr as u32));
    }
    p.push(ins(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW));
    p.push(ins(BPF_RET_K, 0, 0, deny));
    p
}

/// Installs [`filter`] for the calling process (every thread it starts
/// later too), after `no_new_privs`, which an unprivileged process needs
/// to install one and which keeps a set-uid program from regaining
/// privileges. Irreversible.
pub fn confine_net() -> io::Result<()> {
    let prog = filter();
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::ErrorKind::InvalidInput)?,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: prctl(2) with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fprog` points at `prog`, alive across the call; the kernel
    // copies the program.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_denied_call_jumps_to_the_refusal() {
        let p = filter();
        let deny = p.len() - 1;
        assert_eq!(p[deny].k, SECCOMP_RET_ERRNO | libc::EPERM as u32);
        assert_eq!(p[deny - 1].k, SECCOMP_RET_ALLOW);
        // Walk the program for each number, as the kernel would.
        let run = |nr: u32| {
            let mut pc = 4;
            loop {
                let i = p[pc];
                match i.code {
                    BPF_RET_K => return i.k,
                    BPF_JEQ_K if nr == i.k => pc += 1 + usize::from(i.jt),
                    BPF_JGE_K if nr >= i.k => pc += 1 + usize::from(i.jt),
                    _ => pc += 1 + usize::from(i.jf),
                }
            }
        };
        for &nr in DENIED {
            assert_eq!(run(nr as u32), p[deny].k, "syscall {nr}");
        }
        assert_eq!(run(libc::SYS_read as u32), SECCOMP_RET_ALLOW);
        assert_eq!(run(libc::SYS_sendto as u32), SECCOMP_RET_ALLOW);
        assert_eq!(run(libc::SYS_ppoll as u32), SECCOMP_RET_ALLOW);
        assert_eq!(run(X32_SYSCALL_BIT | 2), p[deny].k);
    }
}
