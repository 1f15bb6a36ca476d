#if os(Linux)
import Foundation
import Testing
@testable import ProxEngine

/// Out of descriptors, a listener pauses accepting instead of retrying at once: the connection
/// stays queued, so an immediate retry fails the same way, and the loop would spin at a full
/// core (on io_uring logging a warning each time: 300,000 lines in 2 s, measured).
@Suite(.serialized) struct AcceptBackoffE2ETests {
    static func cpuTicks(_ pid: Int32) -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)  // utime, stime
    }

    @Test(arguments: ["nio", "auto"])
    func runningOutOfDescriptorsPausesAcceptingAndRecovers(engine: String) throws {
        if engine == "auto" && !URingProbe.run().available { return }
        let port = CLITests.freePort()
        let file = try CLITests.temp("backoff-\(engine).yaml", """
        version: 1
        server: {access_log: "off", engine: \(engine)}
        listeners: [{id: main, address: "127.0.0.1:\(port)"}]
        routes: [{id: hello, respond: {status: 200, body: "hi"}}]
        """)
        let prox = try Serve(config: file, port: port, fileLimit: 64)
        var held: [TestClient] = []
        // More connections than descriptors: the kernel completes them into the accept queue,
        // and prox runs out while accepting.
        for _ in 0..<100 { held.append(try TestClient(port: port)) }
        Thread.sleep(forTimeInterval: 0.5)
        let pid = prox.process.processIdentifier
        let before = Self.cpuTicks(pid)
        Thread.sleep(forTimeInterval: 1.5)
        let used = Self.cpuTicks(pid) - before
        // A spinning accept loop uses the whole 1.5 s (150 ticks); paused, next to nothing.
        #expect(used < 75, "prox used \(used) ticks of CPU in 1.5 s while out of descriptors")
        held.removeAll()
        let recovered = try CLITests.eventually(tries: 60, every: 0.1) {
            guard let c = try? TestClient(port: port, timeoutSeconds: 2), (try? c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")) != nil,
                  let r = try? c.readResponse() else { return false }
            return r.status == 200
        }
        #expect(recovered, "no answer once descriptors were free again")
        let log = prox.stop()
        let pauses = log.split(separator: "\n").filter { $0.contains("accept failed: Too many open files") }
        #expect(!pauses.isEmpty, "no warning said accepting paused:\n\(log.suffix(2000))")
        #expect(pauses.allSatisfy { $0.contains("accepting pauses for 500 ms") && $0.contains("ulimit -n") })
        // At most one warning per worker per 500 ms pause (about 2.5 s out of descriptors).
        #expect(pauses.count <= 20, "\(pauses.count) accept warnings")
    }

    /// `prox serve` under a shell's `ulimit` (`limit` is the shell's `ulimit` arguments), stopped
    /// after `seconds`: its exit status and standard error.
    static func serveUnder(limit: String, config: String, seconds: Double) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "ulimit \(limit) && exec \"$0\" serve --config \"$1\" --threads 2 --no-watch", CLITests.binary, config]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if p.isRunning { kill(p.processIdentifier, SIGTERM) }
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    static func helloConfig(_ name: String, port: Int) throws -> String {
        try CLITests.temp(name, """
        version: 1
        server: {access_log: "off"}
        listeners: [{id: main, address: "127.0.0.1:\(port)"}]
        routes: [{id: hello, respond: {status: 200, body: "hi"}}]
        """)
    }

    /// Too few descriptors to start is said plainly (SwiftNIO crashed creating its event loops).
    @Test func tooFewDescriptorsToStartIsAClearError() throws {
        let (status, log) = try Self.serveUnder(limit: "-n 10", config: try Self.helloConfig("fd-few.yaml", port: CLITests.freePort()),
                                                seconds: 10)
        #expect(status == 1)
        #expect(log.contains("this process may open only 10 file descriptors (`ulimit -n`), too few to start"), "\(log)")
        #expect(!log.contains("Fatal error") && !log.contains("Backtracing"), "\(log)")
    }

    /// A soft limit below the hard one is raised to it at start, and said once.
    @Test func theSoftDescriptorLimitIsRaisedToTheHardOne() throws {
        var rl = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0, rl.rlim_max > 256 else { return }
        let (_, log) = try Self.serveUnder(limit: "-S -n 256", config: try Self.helloConfig("fd-soft.yaml", port: CLITests.freePort()),
                                           seconds: 1.5)
        #expect(log.contains("file descriptor limit raised from 256 to \(rl.rlim_max) (the hard limit)"), "\(log)")
        #expect(log.contains("prox started"), "\(log)")
    }
}

typealias Serve = URingEngineE2ETests.Serve
#endif
