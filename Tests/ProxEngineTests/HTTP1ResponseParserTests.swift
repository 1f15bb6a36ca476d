import NIOCore
import ProxCore
@testable import ProxEngine
import Testing

@Suite("HTTP1 response parser")
struct HTTP1ResponseParserTests {
    @Test(arguments: steps)
    func contentLength(step: Int) {
        let r = runResponse("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world", step: step)
        #expect(r.error == nil)
        #expect(r.events == ["head 200", "body", "end"])
        #expect(r.head.reason == "OK")
        #expect(r.head.framing == .contentLength(11))
        #expect(r.head.keepAlive)
        #expect(r.body == "hello world")
        #expect(lines(r.head.fields) == ["Content-Type: text/plain"])
    }

    @Test(arguments: steps)
    func chunkedWithTrailers(step: Int) {
        let r = runResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
            + "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Sum: 1\r\n\r\n", step: step)
        #expect(r.error == nil)
        #expect(r.events == ["head 200", "body", "end"])
        #expect(r.head.framing == .chunked)
        #expect(r.body == "Wikipedia")
        #expect(lines(r.head.fields).isEmpty)
    }

    @Test(arguments: steps)
    func headResponseHasNoBody(step: Int) {
        // Then a second response on the same connection parses right away.
        let r = runResponse("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                            method: .head, step: step)
        #expect(r.error == nil)
        #expect(r.events == ["head 200", "end", "head 200", "end"])
        #expect(r.head.framing == .none)
        // The Content-Length of a HEAD response describes the representation: kept for the client.
        #expect(r.head.header(.contentLength) == "1234")
        #expect(lines(r.head.fields) == ["Content-Length: 1234", "ETag: x"])
        // Chunked HEAD response: no body, no Transfer-Encoding forwarded.
        let c = runResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", method: .head, step: step)
        #expect(c.events == ["head 200", "end"])
        #expect(lines(c.head.fields).isEmpty)
    }

    /// Whether the upstream dated its answer decides whether Prox adds a `Date`: the name is
    /// matched in any case, and no other four-letter name counts.
    @Test(arguments: [("Date", true), ("DATE", true), ("date", true), ("dAtE", true),
                      ("Data", false), ("Gate", false), ("Vary", false), ("ETag", false), ("Dates", false), ("Dat", false)])
    func datedIsTheDateLineAndNothingElse(name: String, dated: Bool) {
        let r = runResponse("HTTP/1.1 200 OK\r\n\(name): Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n")
        #expect(r.error == nil)
        #expect(r.head.dated == dated, "\(name)")
        #expect(lines(r.head.fields) == ["\(name): Sun, 06 Nov 1994 08:49:37 GMT"], "the line itself is forwarded as received")
    }

    @Test func noBodyStatuses() {
        let a = runResponse("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")
        #expect(a.events == ["head 204", "end"])
        #expect(a.head.framing == .none)
        #expect(a.head.header(.contentLength) == nil) // not allowed on 204
        let b = runResponse("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"e\"\r\n\r\n")
        #expect(b.events == ["head 304", "end"])
        #expect(b.head.header(.contentLength) == "5")
        #expect(b.head.keepAlive)
        // Framing headers of a body-less response do not matter, even broken ones.
        let c = runResponse("HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(c.error == nil)
        #expect(lines(c.head.fields).isEmpty)
    }

    @Test(arguments: steps)
    func untilClose(step: Int) {
        let r = runResponse("HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\nsome body bytes", step: step, endOfInput: true)
        #expect(r.error == nil)
        #expect(r.events == ["head 200", "body", "end"])
        #expect(r.head.framing == .untilClose)
        #expect(!r.head.keepAlive)
        #expect(r.body == "some body bytes")
        let empty = runResponse("HTTP/1.0 200 OK\r\n\r\n", step: step, endOfInput: true)
        #expect(empty.events == ["head 200", "end"])
    }

    @Test(arguments: steps)
    func continueThenFinal(step: Int) {
        let r = runResponse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
            + "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", method: .post, step: step)
        #expect(r.error == nil)
        #expect(r.events == ["info 100", "info 103", "head 201", "body", "end"])
        #expect(r.informational[0].reason == "Continue")
        #expect(r.informational[1].header(HeaderName("link")) == "</s.css>")
        #expect(r.body == "ok")
    }

    @Test func keepAliveAndHopByHop() {
        let a = runResponse("HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-End: 2\r\nContent-Length: 0\r\n\r\n")
        #expect(!a.head.keepAlive)
        #expect(lines(a.head.fields) == ["X-End: 2"])
        let b = runResponse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(!b.head.keepAlive)
        #expect(b.head.versionMinor == 0)
        let c = runResponse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
        #expect(c.head.keepAlive)
        let d = runResponse("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
        #expect(d.head.keepAlive)
    }

    @Test func reasonPhrases() {
        #expect(runResponse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").head.reason == "")
        #expect(runResponse("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n").head.reason == "")
        #expect(runResponse("HTTP/1.1 404 Not Here\tReally\r\nContent-Length: 0\r\n\r\n").head.reason == "Not Here\tReally")
    }

    @Test func endOfInputMidMessage() {
        #expect(runResponse("", endOfInput: true).events == [])
        #expect(runResponse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", endOfInput: true).error?.status == 502)
        #expect(runResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc", endOfInput: true).error?.status == 502)
        #expect(runResponse("HTTP/1.1 200 OK\r\n", endOfInput: true).error?.category == HTTP1ParseError.incompleteMessage)
    }

    static let hostile: [(String, String)] = [
        ("CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("conflicting CL", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
        ("bad CL", "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n"),
        ("TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ("TE gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        ("TE unknown", "HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\n"),
        ("TE in 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
        ("HTTP/2", "HTTP/2.0 200 OK\r\n\r\n"),
        ("status 099", "HTTP/1.1 099 X\r\n\r\n"),
        ("status 600", "HTTP/1.1 600 X\r\n\r\n"),
        ("status letters", "HTTP/1.1 2OO OK\r\n\r\n"),
        ("status 4 digits", "HTTP/1.1 2000 OK\r\n\r\n"),
        ("no status", "HTTP/1.1 \r\n\r\n"),
        ("garbage", "hello\r\n\r\n"),
        ("bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
        ("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
        ("space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"),
        ("control in reason", "HTTP/1.1 200 O\u{01}K\r\nContent-Length: 0\r\n\r\n"),
        ("bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n"),
        ("chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY"),
    ]

    @Test(arguments: hostile)
    func rejected(name: String, input: String) {
        for step in [0, 1] {
            let r = runResponse(input, step: step)
            #expect(r.error?.status == 502, "\(name): \(String(describing: r.error))")
            #expect(r.events.last == "error", "\(name): \(r.events)")
        }
    }

    @Test func headTooLarge() {
        let limits = HTTP1Limits(maxHeaderBytes: 100)
        let r = runResponse("HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 200) + "\r\n\r\n", limits: limits)
        #expect(r.error?.category == HTTP1ParseError.headerTooLarge)
        #expect(runResponse("HTTP/1.1 200 OK" + String(repeating: "a", count: 200), limits: limits).error?.status == 502)
    }

    @Test func requestMethodIsSettable() {
        var p = HTTP1ResponseParser(requestMethod: .get)
        p.requestMethod = .head
        var buf = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        guard case .head(let h) = p.next(&buf) else { Issue.record("no head"); return }
        #expect(h.framing == .none)
        guard case .end = p.next(&buf) else { Issue.record("no end"); return }
        #expect(p.isIdle)
    }
}
