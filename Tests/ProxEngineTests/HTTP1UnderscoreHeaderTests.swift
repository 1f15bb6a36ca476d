import NIOCore
import ProxCore
@testable import ProxEngine
import Testing

@Suite("HTTP1 request parser: header names with underscores")
struct HTTP1UnderscoreHeaderTests {
    static let allow = HTTP1Limits(allowUnderscoresInHeaders: true)

    /// (case, header lines after Host, allow underscores, effective lines, dropped count)
    static let cases: [(String, String, Bool, [String], Int)] = [
        ("none", "X-A: 1\r\n", false, ["Host: a", "X-A: 1"], 0),
        ("one dropped", "X_A: 1\r\nX-B: 2\r\n", false, ["Host: a", "X-B: 2"], 1),
        ("one kept", "X_A: 1\r\nX-B: 2\r\n", true, ["Host: a", "X_A: 1", "X-B: 2"], 0),
        ("leading and trailing underscore", "_x: 1\r\nx_: 2\r\n__: 3\r\n", false, ["Host: a"], 3),
        ("several, interleaved", "A_1: 1\r\nB: 2\r\nC_3: 3\r\nD: 4\r\nE_5: 5\r\n", false, ["Host: a", "B: 2", "D: 4"], 3),
        ("several kept", "A_1: 1\r\nB: 2\r\n", true, ["Host: a", "A_1: 1", "B: 2"], 0),
        ("underscore only in value", "X-A: a_b\r\n", false, ["Host: a", "X-A: a_b"], 0),
        ("Host_ is not Host", "Host_: b\r\n", false, ["Host: a"], 1),
        ("Content_Length", "Content_Length: 5\r\n", false, ["Host: a"], 1),
        ("Connection_ does not strip", "Connection_: X-A\r\nX-A: 1\r\n", false, ["Host: a", "X-A: 1"], 1),
    ]

    @Test(arguments: cases)
    func dropOrKeep(name: String, extra: String, allow: Bool, expected: [String], dropped: Int) {
        for step in [0, 1, 5] {
            let r = runRequest("GET / HTTP/1.1\r\nHost: a\r\n" + extra + "\r\n", step: step,
                               limits: allow ? Self.allow : .default)
            #expect(r.error == nil, "\(name)")
            #expect(lines(r.head.fields) == expected, "\(name) (step \(step))")
            #expect(Int(r.head.droppedHeaders) == dropped, "\(name) (step \(step))")
            #expect(r.ends == 1)
        }
    }

    /// `Transfer_Encoding: chunked` is not Transfer-Encoding: the body is framed by
    /// Content-Length, and the line is gone from what is written upstream.
    @Test(arguments: [0, 1, 3])
    func underscoredTransferEncodingDoesNotFrame(step: Int) {
        let input = "POST /u HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"
            + "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
        let r = runRequest(input, step: step)
        #expect(r.error == nil)
        #expect(r.heads.map(\.path) == ["/u", "/next"])
        #expect(r.head.framing == .contentLength(5))
        #expect(r.body == "hello")
        #expect(r.head.droppedHeaders == 1)
        #expect(r.heads[1].droppedHeaders == 0, "the count is per request")
        var out = ByteBuffer()
        HTTP1Writer.writeRequestHead(r.head, framing: r.head.framing, into: &out)
        let wire = String(buffer: out)
        #expect(!wire.lowercased().contains("transfer_encoding"), "\(wire)")
        #expect(!wire.lowercased().contains("transfer-encoding"), "\(wire)")
        #expect(wire.contains("Content-Length: 5\r\n"))
    }

    /// With the option on the line is kept, still not acted on: framing stays Content-Length.
    @Test func keptUnderscoredTransferEncodingStillDoesNotFrame() {
        let r = runRequest("POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 2\r\n\r\nok",
                           limits: Self.allow)
        #expect(r.error == nil)
        #expect(r.head.framing == .contentLength(2))
        #expect(r.head.header(HeaderName("Transfer_Encoding")) == "chunked")
    }

    /// A dropped line still counts toward `maxHeaders`, so a flood of them is refused as usual.
    @Test func droppedLinesCountTowardMaxHeaders() {
        let limits = HTTP1Limits(maxHeaders: 5)
        let many = "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "A_B: c\r\n", count: 5) + "\r\n"
        #expect(runRequest(many, limits: limits).error?.status == 431)
        let enough = "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "A_B: c\r\n", count: 4) + "\r\n"
        let r = runRequest(enough, limits: limits)
        #expect(r.error == nil)
        #expect(r.head.droppedHeaders == 4)
    }

    /// A dropped line's bytes are still checked like any other field line.
    @Test func droppedLinesAreStillValidated() {
        #expect(runRequest("GET / HTTP/1.1\r\nHost: a\r\nX_A: a\u{01}b\r\n\r\n").error?.status == 400)
        #expect(runRequest("GET / HTTP/1.1\r\nHost: a\r\nX_A : b\r\n\r\n").error?.status == 400)
    }

    @Test func limitsFromListener() {
        let off = ListenerSpec(id: "l", index: 0, host: "127.0.0.1", port: 0, maxHeaders: 7)
        let on = ListenerSpec(id: "l", index: 0, host: "127.0.0.1", port: 0, allowUnderscoresInHeaders: true)
        #expect(HTTP1Limits(listener: off) == HTTP1Limits(maxHeaders: 7))
        #expect(HTTP1Limits(listener: on) == HTTP1Limits(allowUnderscoresInHeaders: true))
    }
}
