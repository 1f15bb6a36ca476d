import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A deliberately simple blocking HTTP/1.1 client over a raw socket: it sends exactly the bytes
/// a test gives it (so tests can pipeline, send malformed requests, or stream bodies) and reads
/// responses framed by Content-Length, chunked encoding or the close.
final class TestClient {
    let fd: Int32
    var buffer: [UInt8] = []
    var closedByPeer = false

    init(port: Int, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        // No close here: a class initializer that throws once every property is set still runs
        // `deinit`, which closes the socket. Closing it here too closed the descriptor twice,
        // and the second close could hit a socket another test had just been given that number.
        if rc != 0 { let e = errno; throw TestError("connect to \(port) failed: errno \(e)") }
    }

    deinit { close(fd) }

    func send(_ s: String) throws { try send(Array(s.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw TestError("send failed: errno \(errno)") }
            off += n
        }
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Aborts the connection: with a zero linger, the close sends a TCP reset.
    func reset() {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        shutdown(fd, Int32(SHUT_RD))
    }

    /// Reads more bytes; false at EOF (or error/timeout).
    @discardableResult
    func fill() -> Bool {
        var tmp = [UInt8](repeating: 0, count: 65536)
        let n = tmp.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 65536, 0) }
        if n <= 0 { closedByPeer = true; return false }
        buffer += tmp[0..<n]
        return true
    }

    func readLine() throws -> String {
        while true {
            if let i = findCRLF() {
                let line = String(decoding: buffer[0..<i], as: UTF8.self)
                buffer.removeFirst(i + 2)
                return line
            }
            if !fill() { throw TestError("connection closed while reading a line; got \(String(decoding: buffer, as: UTF8.self))") }
        }
    }

    func findCRLF() -> Int? {
        if buffer.count < 2 { return nil }
        for i in 0..<(buffer.count - 1) where buffer[i] == 13 && buffer[i + 1] == 10 { return i }
        return nil
    }

    /// Reads one response. With `keepBody: false`, the body is counted and checksummed, not kept.
    func readResponse(method: String = "GET", keepBody: Bool = true) throws -> TestResponse {
        var statusLine = try readLine()
        var headers: [(String, String)] = []
        var status = 0
        while true {
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, let s = Int(parts[1]) else { throw TestError("bad status line: \(statusLine)") }
            status = s
            headers = []
            while true {
                let l = try readLine()
                if l.isEmpty { break }
                let c = l.firstIndex(of: ":")!
                headers.append((String(l[..<c]), String(l[l.index(after: c)...]).trimmingCharacters(in: .whitespaces)))
            }
            if status >= 100 && status < 200 { statusLine = try readLine(); continue }
            break
        }
        var r = TestResponse(status: status, headers: headers)
        r.statusLine = statusLine
        if method == "HEAD" || status == 204 || status == 304 { return r }
        if let cl = r.header("content-length").flatMap({ Int($0) }) {
            try readBody(cl, into: &r, keep: keepBody)
        } else if r.header("transfer-encoding")?.lowercased() == "chunked" {
            r.chunked = true
            while true {
                let sizeLine = try readLine()
                guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else { throw TestError("bad chunk size \(sizeLine)") }
                if size == 0 {
                    while try !readLine().isEmpty {}
                    r.complete = true
                    break
                }
                try readBody(size, into: &r, keep: keepBody)
                r.complete = false
                guard try readLine().isEmpty else { throw TestError("missing CRLF after chunk") }
            }
        } else {
            while fill() {}
            r.bodyCount += buffer.count
            r.checksum = fnv(buffer[...], r.checksum)
            if keepBody { r.body += buffer }
            buffer = []
            r.complete = true
        }
        return r
    }

    private func readBody(_ n: Int, into r: inout TestResponse, keep: Bool) throws {
        var left = n
        while left > 0 {
            if buffer.isEmpty && !fill() { r.complete = false; throw TestError("connection closed with \(left) body bytes missing") }
            let take = min(left, buffer.count)
            r.checksum = fnv(buffer[0..<take], r.checksum)
            if keep { r.body += buffer[0..<take] }
            buffer.removeFirst(take)
            r.bodyCount += take
            left -= take
        }
        r.complete = true
    }

    /// True when the peer closes the connection within the timeout.
    func waitForClose() -> Bool {
        while fill() {}
        return closedByPeer
    }
}

struct TestResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8] = []
    var bodyCount = 0
    var checksum: UInt64 = 0xcbf2_9ce4_8422_2325
    var chunked = false
    var complete = false
    var statusLine = ""

    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    var text: String { String(decoding: body, as: UTF8.self) }
}

struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func fnv<C: Collection>(_ bytes: C, _ seed: UInt64) -> UInt64 where C.Element == UInt8 {
    var h = seed
    for x in bytes { h = (h ^ UInt64(x)) &* 0x100_0000_01b3 }
    return h
}
