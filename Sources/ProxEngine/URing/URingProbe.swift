#if os(Linux)
import CProxURing
import Glibc
#endif
import ProxCore

/// What the start-up probe found: whether this kernel, and whatever sandbox Prox runs in, gives
/// the io_uring engine everything it uses, and if not, why not in one sentence.
public struct URingProbe: Sendable, Equatable {
    public var available: Bool
    /// Why not (`available` false), or what was found.
    public var reason: String

    /// The operations the engine submits (IORING_OP_* names, for the reason given when one lacks).
    static let opcodeNames: [(op: UInt8, name: String)] = {
        #if os(Linux)
        return [
            (IORING_OP_NOP, "NOP"), (IORING_OP_READ, "READ"), (IORING_OP_WRITE, "WRITE"), (IORING_OP_RECV, "RECV"),
            (IORING_OP_SEND, "SEND"), (IORING_OP_ACCEPT, "ACCEPT"), (IORING_OP_CONNECT, "CONNECT"),
            (IORING_OP_CLOSE, "CLOSE"), (IORING_OP_TIMEOUT, "TIMEOUT"), (IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"),
        ].map { (UInt8($0.0.rawValue), $0.1) }
        #else
        return []
        #endif
    }()

    /// The probe, run once per process (`probeHere` on a thread of its own).
    ///
    /// Not on the caller's thread: a `DEFER_TASKRUN` ring's teardown notifies the thread that set
    /// it up (TIF_NOTIFY_SIGNAL), and a blocking call with a timeout on that thread (a socket
    /// with SO_RCVTIMEO, say) then fails with EINTR. A thread that ends after the probe takes it.
    public static func run() -> URingProbe { cached }

    private static let cached: URingProbe = {
        #if os(Linux)
        final class Box: @unchecked Sendable { var probe = URingProbe(available: false, reason: "the probe did not run") }
        let box = Unmanaged.passRetained(Box())
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let b = Unmanaged<AnyObject>.fromOpaque(arg!).takeUnretainedValue() as! Box
            b.probe = URingProbe.probeHere()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            return URingProbe(available: false, reason: "the io_uring probe could not start its thread (pthread_create: \(rc))")
        }
        pthread_join(tid, nil)
        return box.takeRetainedValue().probe
        #else
        return probeHere()
        #endif
    }()

    /// Probes as the engine will run, on this thread: a ring set up `SINGLE_ISSUER | DEFER_TASKRUN`,
    /// the extended wait argument (timed waits), the opcodes the engine submits, and a
    /// provided-buffer ring. Each refusal is the reason. Costs one small ring, made and closed.
    static func probeHere() -> URingProbe {
        #if os(Linux)
        let ring: URing
        do {
            ring = try URing(entries: 8)
        } catch {
            return URingProbe(available: false, reason: setupRefusal(errno: error.errno))
        }
        guard ring.features & UInt32(IORING_FEAT_EXT_ARG) != 0 else {
            return URingProbe(available: false, reason: "the kernel's io_uring lacks timed waits (IORING_FEAT_EXT_ARG, Linux 5.11)")
        }
        do {
            if let missing = try ring.firstUnsupported(opcodeNames.map(\.op)) {
                let name = opcodeNames.first { $0.op == missing }?.name ?? "\(missing)"
                return URingProbe(available: false, reason: "the kernel's io_uring lacks the \(name) operation")
            }
            try ring.tryProvidedBufferRing(entries: 8, group: 0)
        } catch {
            return URingProbe(available: false, reason: "io_uring refused \(error.call): \(error)")
        }
        return URingProbe(available: true, reason: "io_uring is available (SINGLE_ISSUER, DEFER_TASKRUN, provided buffer rings)")
        #else
        return URingProbe(available: false, reason: "io_uring is Linux-only")
        #endif
    }

    /// Why `io_uring_setup` with the engine's flags failed, from its errno.
    static func setupRefusal(errno: Int32) -> String {
        #if os(Linux)
        switch errno {
        case ENOSYS:
            return "the kernel has no io_uring (io_uring_setup: ENOSYS; Linux 5.1 or later built with it is needed, and gVisor has none)"
        case EPERM, EACCES:
            return "io_uring is not permitted here (io_uring_setup: \(errno == EPERM ? "EPERM" : "EACCES")): the sysctl kernel.io_uring_disabled is set, or a seccomp profile (as some container runtimes ship) forbids it"
        case EINVAL:
            return "the kernel refuses io_uring_setup with SINGLE_ISSUER | DEFER_TASKRUN (EINVAL): Linux 6.1 or later is needed"
        case ENOMEM:
            return "io_uring_setup failed: ENOMEM (the locked-memory limit, `ulimit -l`, may be too low for the ring)"
        case EMFILE, ENFILE:
            return "io_uring_setup failed: out of file descriptors"
        default:
            return "io_uring_setup failed: \(String(cString: strerror(errno))) (errno \(errno))"
        }
        #else
        return "io_uring is Linux-only"
        #endif
    }
}

/// Which engine `prox serve` runs, and why: the one log line at start.
public struct EngineDecision: Sendable, Equatable {
    /// `.nio` or `.uring` (never `.auto`).
    public var engine: ServerEngine
    public var reason: String

    /// Decides from `server.engine`, the probe and what `snapshot` uses. `uring` that cannot run
    /// (the kernel or sandbox refuses, or the config uses what the io_uring engine does not carry
    /// yet) is an error naming the reason; `auto` falls back to SwiftNIO and says why.
    public static func decide(_ configured: ServerEngine, snapshot: Snapshot? = nil,
                              probe: () -> URingProbe = URingProbe.run) throws -> EngineDecision {
        switch configured {
        case .nio:
            return EngineDecision(engine: .nio, reason: "server.engine is nio")
        case .auto:
            let p = probe()
            guard p.available else {
                return EngineDecision(engine: .nio, reason: "server.engine is auto and \(p.reason): SwiftNIO serves every listener")
            }
            if let s = snapshot, let missing = uringLacks(s) {
                return EngineDecision(engine: .nio, reason: "server.engine is auto; io_uring is available, but \(missing): SwiftNIO serves every listener")
            }
            return EngineDecision(engine: .uring, reason: "server.engine is auto and \(p.reason): io_uring serves the cleartext HTTP/1 listeners")
        case .uring:
            let p = probe()
            guard p.available else { throw ServerError("server.engine is uring, but \(p.reason); use `auto` or `nio` to run on SwiftNIO") }
            if let s = snapshot, let missing = uringLacks(s) {
                throw ServerError("server.engine is uring, but \(missing); use `auto` or `nio`")
            }
            return EngineDecision(engine: .uring, reason: "server.engine is uring: io_uring serves the cleartext HTTP/1 listeners")
        }
    }

    /// What in `snapshot` the io_uring engine does not carry yet, said as a reason; nil if nothing.
    public static func uringLacks(_ s: Snapshot) -> String? {
        if let pool = s.pools.first(where: { $0.tls != nil }) {
            return "pool \(pool.id) uses TLS to its upstreams, which the io_uring engine does not carry yet"
        }
        if let route = s.routes.first(where: { $0.chain.stages.contains { $0.kind == "ext_filter" } }) {
            return "route \(route.id) uses ext_filter, whose client runs on SwiftNIO only"
        }
        return nil
    }
}
