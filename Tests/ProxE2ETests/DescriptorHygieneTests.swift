import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Every test shares one process, so a descriptor closed twice closes whatever another test was
/// given that number in between (CI once saw a client's `send` fail with EBADF that way).
@Suite struct DescriptorHygieneTests {
    /// The descriptor numbers open on `path`, from /proc/self/fd.
    static func descriptors(on path: String) -> [Int32] {
        let dir = "/proc/self/fd"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { name in
            guard let fd = Int32(name), let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\(name)") else { return nil }
            return target == path ? fd : nil
        }
    }

    /// A second `shutdown` leaves the access log's old descriptor number alone: by then it may
    /// be another file's.
    @Test func shutdownTwiceClosesTheAccessLogOnce() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("prox-access-\(UUID().uuidString).log").path
        defer { unlink(path) }
        let h = try ProxHarness("""
        version: 1
        server: {access_log: "\(path)"}
        listeners: [{id: main, address: "127.0.0.1:0"}]
        routes: [{id: r, respond: {status: 200}}]
        """)
        let fds = Self.descriptors(on: path)
        try #require(fds.count == 1, "the access log is open once: \(fds)")
        h.stop()
        // Take the old number if it is still free (F_DUPFD never takes one in use); if another
        // test's socket got it first, this run cannot tell and checks nothing.
        let null = open("/dev/null", O_RDONLY)
        defer { close(null) }
        let held = fcntl(null, F_DUPFD, fds[0])
        defer { if held >= 0 { close(held) } }
        h.stop()
        if held == fds[0] {
            #expect(fcntl(held, F_GETFD) != -1, "the second shutdown closed descriptor \(held), which was no longer the access log's")
        }
    }
}
