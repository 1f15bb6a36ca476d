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

    /// Probes as the engine will run: a ring set up `SINGLE_ISSUER | DEFER_TASKRUN`, the
    /// extended wait argument (timed waits), the opcodes the engine submits, and a provided-buffer
    /// ring. Each refusal is the reason. Costs one small ring, made and closed.
    public static func run() -> URingProbe {
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

    /// Decides from `server.engine` and, for `auto` and `uring`, the probe. `uring` that cannot
    /// run is an error naming the reason; `auto` falls back to SwiftNIO and says why.
    public static func decide(_ configured: ServerEngine, probe: () -> URingProbe = URingProbe.run) throws -> EngineDecision {
        switch configured {
        case .nio:
            return EngineDecision(engine: .nio, reason: "server.engine is nio")
        case .auto:
            let p = probe()
            guard p.available else {
                return EngineDecision(engine: .nio, reason: "server.engine is auto and \(p.reason): SwiftNIO serves every listener")
            }
            return EngineDecision(engine: .nio, reason: "server.engine is auto; io_uring is available, but the io_uring engine does not serve HTTP/1 listeners yet in this build: SwiftNIO serves every listener")
        case .uring:
            let p = probe()
            guard p.available else { throw ServerError("server.engine is uring, but \(p.reason); use `auto` or `nio` to run on SwiftNIO") }
            throw ServerError("server.engine is uring, but the io_uring engine does not serve HTTP/1 listeners yet in this build; use `auto` or `nio`")
        }
    }
}
