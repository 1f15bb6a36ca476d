import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import ProxEngine

@Suite(.serialized) struct ReloadDrainE2ETests {
    static func config(tag: String) -> String {
        """
        version: 1
        server: { access_log: "off" }
        listeners: [{ id: main, address: "127.0.0.1:0" }]
        pools:
          - id: backend
            endpoints: [{ address: "{upstream}" }]
        routes:
          - id: all
            match: { path: { prefix: / } }
            chain:
              - headers: { request: { set: { X-Config: \(tag) } } }
            proxy: { pool: backend }
        """
    }

    @Test func reloadUnderLoadFailsNoRequest() throws {
        let up = try TestUpstream(threads: 1)
        defer { up.stop() }
        let prox = try ProxHarness(Self.config(tag: "v1"), upstream: up.address, threads: 2)
        defer { prox.stop() }
        let failures = NIOLockedValueBox<[String]>([])
        let seen = NIOLockedValueBox<Set<String>>([])
        let total = NIOLockedValueBox(0)
        let stop = NIOLockedValueBox(false)
        let group = DispatchGroup()
        for w in 0..<4 {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    // Half the workers keep one connection; half reconnect every 20 requests.
                    var c = try prox.client()
                    var n = 0
                    while !stop.withLockedValue({ $0 }) {
                        if w % 2 == 1 && n % 20 == 19 { c = try prox.client() }
                        try c.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
                        let r = try c.readResponse()
                        if r.status != 200 { failures.withLockedValue { $0.append("status \(r.status)") } }
                        if let line = r.text.split(separator: "\n").first(where: { $0.hasPrefix("h:x-config=") }) {
                            seen.withLockedValue { _ = $0.insert(String(line)) }
                        }
                        n += 1
                        total.withLockedValue { $0 += 1 }
                    }
                } catch {
                    failures.withLockedValue { $0.append("\(error)") }
                }
            }.start()
        }
        for i in 0..<20 {
            Thread.sleep(forTimeInterval: 0.05)
            try prox.reload(Self.config(tag: "v\(i + 2)"), upstream: up.address)
        }
        Thread.sleep(forTimeInterval: 0.1)
        stop.withLockedValue { $0 = true }
        group.wait()
        #expect(failures.withLockedValue { $0 }.isEmpty, "\(failures.withLockedValue { $0.prefix(5) })")
        #expect(total.withLockedValue { $0 } > 200)
        #expect(seen.withLockedValue { $0.count } > 3, "requests must see the new snapshots")
        #expect(seen.withLockedValue { $0.contains("h:x-config=v21") })
    }

    /// A replaced snapshot is freed off the event loops once nothing uses it: at once when no
    /// request holds it, and after the last one finishes when a request still runs on it.
    @Test func replacedSnapshotsAreFreedOffTheLoops() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(Self.config(tag: "r1"), upstream: up.address, threads: 2)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        try prox.reload(Self.config(tag: "r2"), upstream: up.address)
        #expect(prox.server.retiredCount == 0)
        // A slow request keeps snapshot r2 alive across the next reload.
        let slow = try prox.client()
        try slow.send("GET /slow?ms=300 HTTP/1.1\r\nHost: a\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.05)
        try prox.reload(Self.config(tag: "r3"), upstream: up.address)
        #expect(prox.server.retiredCount == 1)
        let r = try slow.readResponse()
        #expect(r.text == "slow 300\n")
        let deadline = Date().addingTimeInterval(5)
        while prox.server.retiredCount > 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(prox.server.retiredCount == 0)
    }

    @Test func drainLetsInFlightRequestsFinishAndRefusesNewOnes() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(Self.config(tag: "d"), upstream: up.address)
        let busy = try prox.client()
        let idle = try prox.client()
        try idle.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try idle.readResponse().status == 200)
        try busy.send("GET /slow?ms=400 HTTP/1.1\r\nHost: a\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.1)
        let drained = NIOLockedValueBox(false)
        let t = Thread { drained.withLockedValue { $0 = prox.server.drain(timeout: .seconds(5)) } }
        t.start()
        Thread.sleep(forTimeInterval: 0.1)
        // The idle keep-alive connection is closed; new connections are refused.
        #expect(idle.waitForClose())
        #expect(throws: (any Error).self) {
            let c = try prox.client()
            try c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            _ = try c.readResponse()
        }
        let r = try busy.readResponse()
        #expect(r.status == 200)
        #expect(r.text == "slow 400\n")
        #expect(r.header("connection") == "close")
        while !drained.withLockedValue({ $0 }) { Thread.sleep(forTimeInterval: 0.05) }
        prox.stop()
    }
}
