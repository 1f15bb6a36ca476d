import ArgumentParser
import Foundation
import Logging
import NIOCore
import ProxConfig
import ProxCore
import ProxEngine

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the proxy.",
        discussion: """
        With no --config, serves the embedded default config (listener 127.0.0.1:8080; try \
        `curl localhost:8080/`).

        SIGHUP or a change of the config file (or of a TLS listener's certificate or key file) \
        reloads it: the new config is validated and compiled off the hot path, then swapped in \
        atomically; an invalid one is logged and the running config keeps serving.

        SIGTERM or SIGINT drain: stop accepting, let requests in flight finish (up to \
        server.drain_timeout), exit 0.
        """
    )

    @Option(name: .shortAndLong, help: "Config file (YAML or JSON). Default: the embedded config.")
    var config: String?

    @Option(help: "Number of event loops (default: the number of cores).")
    var threads: Int?

    @Option(help: "A policy file: a config that breaks one of its `enforce` rules is refused, at start and on every reload; `warn` rules are logged. Re-read on every reload.")
    var policy: String?

    @Flag(help: "Do not watch the config file for changes (SIGHUP still reloads).")
    var noWatch = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: ArgumentHelp("Write the process id to FILE once the listeners are bound (removed after the drain), for `kill -HUP $(cat FILE)`.", valueName: "FILE"))
    var pidFile: String?

    func validate() throws {
        if let n = threads, n < 1 { throw ValidationError("--threads must be at least 1 (got \(n)); leave it out for one per core") }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "prox")
        // Signals are taken synchronously by the main thread (sigwait), so they are blocked in
        // every thread, including the event loops created below, which inherit the mask.
        ServerProcess.blockSignals()
        var loader = SnapshotLoader(path: config)
        loader.policy = policy
        let snapshot: Snapshot
        switch loader.load(version: 1) {
        case .success(let s): snapshot = s
        case .failure(let f):
            FileHandle.standardError.write(Data((f.report + "\n").utf8))
            throw ExitCode(f.unreadable ? 2 : 1)
        }
        // Which engine carries the cleartext HTTP/1 listeners, and why: one line at start.
        let engine: EngineDecision
        do {
            engine = try EngineDecision.decide(snapshot.settings.engine, snapshot: snapshot)
        } catch {
            FileHandle.standardError.write(Data("prox: \(error)\n".utf8))
            throw ExitCode(1)
        }
        logger.info("engine: \(engine.engine.rawValue) (\(engine.reason))")
        let threadCount = threads ?? System.coreCount
        do {
            try DescriptorLimit.prepare(snapshot, threads: threadCount, logger: logger)
        } catch let e as ServerError {
            FileHandle.standardError.write(Data("prox: \(e)\n".utf8))
            throw ExitCode(1)
        }
        let server = try ServerProcess(snapshot: snapshot, threads: threadCount, engine: engine.engine, loader: loader, logger: logger)
        server.pidFile = pidFile
        do {
            try server.start(watch: !noWatch && config != nil)
        } catch let e as ServerError {
            FileHandle.standardError.write(Data("prox: \(e)\n".utf8))
            throw ExitCode(1)
        }
        server.waitForSignals()
    }
}

/// Loads and compiles the config the server was started with (a file, or the embedded default).
struct SnapshotLoader: Sendable {
    let path: String?
    /// The filters chain entries may name: the binary's registry.
    var filters: FilterRegistry = ProxCommand.filters
    /// A policy file every load is checked against (`serve --policy`); read anew on each load,
    /// so a reload picks up a changed policy too.
    var policy: String?

    struct Failure: Error {
        var report: String
        var unreadable: Bool
    }

    var sourceName: String { path ?? "<embedded default config>" }

    func load(version: Int) -> Result<Snapshot, Failure> {
        let result: CompileResult
        if let p = path {
            result = ConfigCompiler.compile(file: p, version: version, filters: filters)
        } else {
            result = ConfigCompiler.compile(text: DefaultConfig.yaml, fileName: "<embedded default config>", version: version,
                                            filters: filters)
        }
        if let s = result.snapshot, !result.diagnostics.contains(where: { $0.severity == .error }) {
            guard let policy else { return .success(s) }
            // The same rules as any invalid config: an `enforce` violation keeps the config out.
            let loaded = Policy.load(file: policy, filters: filters)
            var found = loaded.diagnostics
            if let rules = loaded.policy, let root = result.root { found += rules.check(root: root, snapshot: s) }
            if found.hasErrors || loaded.policy == nil {
                return .failure(Failure(report: DiagnosticFormatter.text(found), unreadable: loaded.unreadable))
            }
            if !found.isEmpty { FileHandle.standardError.write(Data((DiagnosticFormatter.text(found) + "\n").utf8)) }
            return .success(s)
        }
        return .failure(Failure(report: DiagnosticFormatter.text(result.diagnostics), unreadable: result.unreadable))
    }
}

/// The serve process: the server, its signals and the config watcher. Signals are received with
/// `sigwait` on the main thread and the file is polled by a plain thread: no Dispatch sources,
/// which also keeps `serve` runnable under valgrind.
final class ServerProcess: @unchecked Sendable {
    let server: ProxServer
    let loader: SnapshotLoader
    let logger: Logger
    /// Serialises reloads from SIGHUP and from the watcher.
    let reloadLock = NSLock()
    var version = 1
    var draining = false
    /// Written once the listeners are bound, removed when the drain ends.
    var pidFile: String?

    static let handled: [Int32] = [SIGHUP, SIGTERM, SIGINT]

    static func blockSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    init(snapshot: Snapshot, threads: Int, engine: ServerEngine = .nio, loader: SnapshotLoader, logger: Logger) throws {
        self.server = try ProxServer(snapshot: snapshot, threads: threads, logger: logger, engine: engine)
        self.loader = loader
        self.logger = logger
    }

    func start(watch: Bool) throws {
        // The watcher's first look, taken before the listeners open: taken on the watcher's own
        // thread (which starts later, at a lower priority), an edit made as soon as the first
        // request was answered could land before it, and that edit was never noticed.
        let firstStamps = watch && loader.path != nil ? watchedStamps(loader.path!) : [:]
        let addrs = try server.start()
        if let f = pidFile {
            do {
                try "\(getpid())\n".write(toFile: f, atomically: true, encoding: .utf8)
            } catch {
                throw ServerError("cannot write the pid file \(f): \(error.localizedDescription)")
            }
        }
        // This thread reloads on SIGHUP and starts the watcher, which inherits the setting: a
        // reload's compile runs below the event loops' priority, so on a busy machine it waits
        // for them rather than they for it.
        ServerProcess.lowerThisThreadsPriority()
        let s = server.snapshot
        logger.info("prox started", metadata: [
            "config": "\(loader.sourceName)",
            "snapshot": "\(s.version)",
            "threads": "\(server.group.makeIterator().map { _ in 1 }.count)",
            "listeners": "\(zip(s.listeners, addrs).map { "\($0.0.id)=\($0.1.ipAddress ?? "?"):\($0.1.port ?? 0)" }.joined(separator: ", "))",
            "routes": "\(s.routes.count)",
            "pools": "\(s.pools.map { "\($0.id)(\($0.endpoints.count))" }.joined(separator: ", "))",
            "access_log": "\(s.settings.accessLog)",
        ])
        if watch, let path = loader.path {
            let t = Thread { [self] in
                var last = firstStamps
                while true {
                    Thread.sleep(forTimeInterval: 1)
                    let now = watchedStamps(path)
                    if now != last {
                        let changed = now.first { last[$0.key] != $0.value }?.key ?? last.first { now[$0.key] == nil }?.key ?? path
                        if FileStamp(path) != nil {
                            reload(reason: changed == path ? "config file changed" : "\(changed) changed")
                        }
                        // The files of the snapshot now serving (a reload may name others).
                        last = watchedStamps(path)
                    }
                }
            }
            t.name = "prox-config-watch"
            t.start()
        }
    }

    /// What the watcher compares: the config file, and the certificate and key files of the
    /// TLS listeners now serving with their directories (a file added to a `certificates_dir`
    /// changes its directory), so renewed certificates reload without a SIGHUP.
    func watchedStamps(_ path: String) -> [String: FileStamp?] {
        var out: [String: FileStamp?] = [path: FileStamp(path)]
        for l in server.snapshot.listeners {
            for c in l.tls?.certificates ?? [] {
                for f in [c.certFile, c.keyFile, (c.certFile as NSString).deletingLastPathComponent] where !f.isEmpty {
                    out[f] = FileStamp(f)
                }
            }
        }
        return out
    }

    /// Lowers the calling thread's scheduling priority (Linux priorities are per thread).
    static func lowerThisThreadsPriority() {
        #if os(Linux)
        // On Linux, `who` 0 with PRIO_PROCESS names the calling thread alone.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
        #endif
    }

    /// Blocks the calling (main) thread, handling signals until a drain ends the process.
    func waitForSignals() -> Never {
        var set = sigset_t()
        sigemptyset(&set)
        for s in Self.handled { sigaddset(&set, s) }
        while true {
            var sig: Int32 = 0
            guard sigwait(&set, &sig) == 0 else { continue }
            switch sig {
            case SIGHUP: reload(reason: "SIGHUP")
            default: drainAndExit(signal: sig == SIGTERM ? "SIGTERM" : "SIGINT")
            }
        }
    }

    /// Runs on the main thread or the watcher, never on an event loop.
    func reload(reason: String) {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        guard !draining else { return }
        let next = version + 1
        logger.info("reloading (\(reason))")
        switch loader.load(version: next) {
        case .success(let s):
            if let why = server.refusal(of: s) {
                logger.error("reload rejected; the running snapshot \(version) keeps serving: \(why)")
                return
            }
            version = next
            server.swap(s)
        case .failure(let f):
            logger.error("reload rejected; the running snapshot \(version) keeps serving:\n\(f.report)")
        }
    }

    func drainAndExit(signal: String) -> Never {
        reloadLock.lock()
        draining = true
        reloadLock.unlock()
        logger.info("\(signal): draining")
        let timeout = server.snapshot.settings.drainTimeout
        let clean = server.drain(timeout: .milliseconds(timeout))
        server.shutdown()
        logger.info(clean ? "drained; exiting" : "drain timed out; exiting")
        if let f = pidFile { unlink(f) }
        exit(0)
    }
}

/// What identifies a version of the config file on disk.
struct FileStamp: Equatable {
    var mtime: Int
    var mtimeNanos: Int
    var size: Int
    var inode: UInt64

    init?(_ path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        mtime = Int(st.st_mtim.tv_sec)
        mtimeNanos = Int(st.st_mtim.tv_nsec)
        size = Int(st.st_size)
        inode = UInt64(st.st_ino)
    }
}

/// The process's file descriptor limit, set up before the server starts. The soft limit is raised
/// to the hard one (as Go's runtime does at start): distributions start services at 1024, which a
/// proxy holding two descriptors per proxied connection outgrows at about 500 connections. A
/// limit too small to start is an error that says so (SwiftNIO would otherwise crash creating
/// its event loops); one below what the listeners' `max_connections` allow is a warning.
enum DescriptorLimit {
    /// Descriptors the server needs before any connection: standard streams, logs, each event
    /// loop's or worker's own (epoll, eventfd, timerfd, ring), each listener's socket per thread.
    static func baseline(threads: Int, listeners: Int) -> Int { 32 + threads * 8 + listeners * threads }

    static func prepare(_ snapshot: Snapshot, threads: Int, logger: Logger) throws {
        #if os(Linux)
        var rl = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return }
        if rl.rlim_cur < rl.rlim_max {
            let before = rl.rlim_cur
            var raised = rl
            raised.rlim_cur = rl.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 {
                rl = raised
                logger.info("file descriptor limit raised from \(before) to \(rl.rlim_max) (the hard limit)")
            }
        }
        let limit = rl.rlim_cur == rlim_t.max ? Int.max : Int(clamping: rl.rlim_cur)
        let base = baseline(threads: threads, listeners: snapshot.listeners.count)
        if limit < base {
            throw ServerError("this process may open only \(limit) file descriptors (`ulimit -n`), too few to start: "
                + "\(threads) thread(s) and \(snapshot.listeners.count) listener(s) need about \(base) before any connection. "
                + "Raise the limit (`ulimit -n 65536`, or `LimitNOFILE=65536` in a systemd unit), or give fewer --threads.")
        }
        // Warned when the listeners' limits cannot be reached even at one descriptor a
        // connection (an idle keep-alive client holds one; a request in flight upstream, two).
        let allowed = snapshot.listeners.reduce(0) { $0 + $1.maxConnections }
        if allowed > limit - base {
            let text = "the listeners allow \(allowed) connections (max_connections), but this process may open only \(limit) "
                + "file descriptors (`ulimit -n`; each connection holds one, two while its request is proxied): past about "
                + "\(max(0, limit - base)) connections, accepting pauses until descriptors free. Raise the limit "
                + "(`LimitNOFILE=` in a systemd unit) or lower max_connections."
            logger.warning("\(text)")
        }
        #endif
    }
}
