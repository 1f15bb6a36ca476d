import NIOCore
import ProxCore
@testable import ProxEngine
import Testing

/// Every good input is also fed in these step sizes (0 = all at once, 1 = byte by byte).
let steps = [0, 1, 2, 3, 7, 64]

@Suite("HTTP1 request parser: good input")
struct HTTP1RequestGoodTests {
    @Test(arguments: steps)
    func simpleGet(step: Int) {
        let r = runRequest("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: Example.COM:8080\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n", step: step)
        #expect(r.error == nil)
        #expect(r.heads.count == 1)
        #expect(r.ends == 1)
        let h = r.head
        #expect(h.method == .get)
        #expect(h.versionMinor == 1)
        #expect(h.target == "/a/b?x=1&y=2")
        #expect(h.path == "/a/b")
        #expect(h.query == "x=1&y=2")
        #expect(h.queryParameter("y") == "2")
        #expect(h.host == "example.com")
        #expect(h.header(.host) == "Example.COM:8080")
        #expect(h.header(HeaderName("user-agent")) == "t")
        #expect(h.header(HeaderName("ACCEPT")) == "*/*")
        #expect(h.framing == .none)
        #expect(h.keepAlive)
        #expect(!h.expectContinue)
        #expect(r.bodyEvents == 0)
        #expect(r.leftover == 0)
    }

    @Test(arguments: steps)
    func pipelined(step: Int) {
        let input = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
            + "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
            + "\r\n" // a stray CRLF after a body (RFC 9112 2.2) is ignored
            + "GET /3 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
        let r = runRequest(input, step: step)
        #expect(r.error == nil)
        #expect(r.heads.map(\.path) == ["/1", "/2", "/3"])
        #expect(r.ends == 3)
        #expect(r.bodies.map { String(decoding: $0, as: UTF8.self) } == ["", "hello", ""])
        #expect(r.heads.map(\.keepAlive) == [true, true, false])
        #expect(r.heads.map(\.host) == ["a", "a", "b"])
    }

    @Test(arguments: steps)
    func http10(step: Int) {
        let a = runRequest("GET / HTTP/1.0\r\n\r\n", step: step)
        #expect(a.error == nil)
        #expect(a.head.versionMinor == 0)
        #expect(!a.head.keepAlive)
        #expect(a.head.host == "")
        let b = runRequest("GET / HTTP/1.0\r\nHost: x\r\nConnection: Keep-Alive\r\n\r\n", step: step)
        #expect(b.head.keepAlive)
        #expect(lines(b.head.fields) == ["Host: x"])
        // HTTP/1.0 ignores Expect (RFC 9110 10.1.1).
        let c = runRequest("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", step: step)
        #expect(c.error == nil)
        #expect(!c.head.expectContinue)
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        ("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nConnection: close\r\n\r\n", false),
        ("GET / HTTP/1.0\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n", false),
    ])
    func keepAliveDecisions(input: String, expected: Bool) {
        let r = runRequest(input)
        #expect(r.error == nil)
        #expect(r.head.keepAlive == expected)
    }

    @Test(arguments: steps)
    func chunkedWithExtensionsAndTrailers(step: Int) {
        let input = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;name=value;flag;q=\"a \\\"b\\\" c\"\r\nhello\r\n"
            + "6 ; x = y\r\n world\r\n"
            + "00000000000000000a\r\n0123456789\r\n"
            + "0\r\nChecksum: abc\r\nX-Other:  1 \r\n\r\n"
            + "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
        let r = runRequest(input, step: step)
        #expect(r.error == nil)
        #expect(r.heads.count == 2)
        #expect(r.head.framing == .chunked)
        #expect(r.body == "hello world0123456789")
        #expect(r.heads[1].path == "/next")
        #expect(r.ends == 2)
        // Transfer-Encoding is hop-by-hop: stages never see it.
        #expect(r.head.header(.transferEncoding) == nil)
        #expect(lines(r.head.fields) == ["Host: a"])
    }

    @Test(arguments: steps)
    func contentLengthBody(step: Int) {
        let payload = String(repeating: "0123456789", count: 100)
        let r = runRequest("PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + payload, step: step)
        #expect(r.error == nil)
        #expect(r.head.framing == .contentLength(1000))
        #expect(r.body == payload)
        #expect(r.ends == 1)
        #expect(r.head.header(.contentLength) == nil)
        if step == 1 { #expect(r.bodyEvents == 1000) }
        if step == 0 { #expect(r.bodyEvents == 1) }
    }

    @Test func contentLengthZeroAndIdenticalList() {
        let r = runRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        #expect(r.head.framing == .contentLength(0))
        #expect(r.ends == 1)
        #expect(r.bodyEvents == 0)
        let l = runRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\nContent-Length: 003\r\n\r\nabc")
        #expect(l.error == nil)
        #expect(l.head.framing == .contentLength(3))
        #expect(l.body == "abc")
    }

    @Test func bodySlicesShareTheInputStorage() {
        var parser = HTTP1RequestParser()
        var buf = ByteBuffer(string: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd")
        guard case .head(let h) = parser.next(&buf), case .body(let b) = parser.next(&buf) else {
            Issue.record("expected head and body")
            return
        }
        h.fields.bytes.withUnsafeReadableBytes { head in
            b.withUnsafeReadableBytes { part in #expect(head.baseAddress! + head.count == part.baseAddress!) }
        }
        #expect(parser.next(&buf).map { if case .end = $0 { true } else { false } } == true)
    }

    @Test(arguments: steps)
    func absoluteForm(step: Int) {
        let r = runRequest("GET http://Example.com:81/p/q?x=1 HTTP/1.1\r\nHost: example.com:81\r\nA: b\r\n\r\n", step: step)
        #expect(r.error == nil)
        let h = r.head
        #expect(h.host == "example.com")
        #expect(h.target == "/p/q?x=1")
        #expect(h.path == "/p/q")
        #expect(h.query == "x=1")
        // Host equal (ignoring case) to the authority: kept as received.
        #expect(h.header(.host) == "example.com:81")
        #expect(lines(h.fields) == ["Host: example.com:81", "A: b"])

        // A Host that differs is replaced by the authority (RFC 9112 3.2.2).
        let d = runRequest("GET https://api.test/v1 HTTP/1.1\r\nHost: other\r\n\r\n", step: step)
        #expect(d.head.host == "api.test")
        #expect(d.head.header(.host) == "api.test")
        #expect(d.head.path == "/v1")

        // No path: the origin-form is "/".
        let e = runRequest("GET http://h.test HTTP/1.1\r\nHost: h.test\r\n\r\n", step: step)
        #expect(e.error == nil)
        #expect(e.head.target == "/")
        #expect(e.head.path == "/")
        #expect(e.head.query == nil)
        let f = runRequest("GET http://h.test?a=1 HTTP/1.1\r\nHost: h.test\r\n\r\n", step: step)
        #expect(f.head.target == "/?a=1")
        #expect(f.head.path == "/")
        #expect(f.head.query == "a=1")
        #expect(f.head.header(.host) == "h.test")

        // IPv6 literal.
        let g = runRequest("GET http://[::1]:8080/x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", step: step)
        #expect(g.head.host == "[::1]")
        // HTTP/1.0 absolute-form without Host: Host comes from the authority.
        let i = runRequest("GET http://h.test/x HTTP/1.0\r\n\r\n", step: step)
        #expect(i.error == nil)
        #expect(i.head.header(.host) == "h.test")
    }

    @Test(arguments: steps)
    func hopByHopRemoval(step: Int) {
        let input = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Private, x-other\r\nKeep-Alive: timeout=5\r\n"
            + "TE: trailers\r\nTrailer: X-T\r\nUpgrade: websocket\r\nProxy-Connection: close\r\n"
            + "X-Private: secret\r\nX-Keep: 1\r\nX-OTHER: 2\r\nConnection: X-Third\r\nX-Third: 3\r\nAccept: a\r\n\r\n"
        let r = runRequest(input, step: step)
        #expect(r.error == nil)
        #expect(lines(r.head.fields) == ["Host: a", "X-Keep: 1", "Accept: a"])
        #expect(r.head.header(HeaderName("X-Private")) == nil)
        #expect(r.head.header(.connection) == nil)
        #expect(r.head.keepAlive)
        // Connection cannot strip Host.
        let h = runRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n", step: step)
        #expect(h.head.header(.host) == "a")
    }

    @Test func headerLookupsAndValues() {
        let r = runRequest("GET / HTTP/1.1\r\nHost: a\r\nX-Pad:   spaced value \t \r\nX-Empty:\r\nX-Tab: a\tb\r\n"
            + "X-Obs: caf\u{e9}\r\nCookie: a=1; b=2\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n")
        #expect(r.error == nil)
        let h = r.head
        #expect(h.header(HeaderName("x-pad")) == "spaced value")
        #expect(h.header(HeaderName("X-Empty")) == "")
        #expect(h.header(HeaderName("X-Tab")) == "a\tb")
        #expect(h.header(HeaderName("X-Obs")) == "caf\u{e9}")
        #expect(h.cookie("b") == "2")
        #expect(h.fields.all(HeaderName("X-Multi")) == ["1", "2"])
    }

    @Test func unknownMethodsAndExpect() {
        let r = runRequest("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.head.method == .other("PURGE"))
        let m = runRequest("get / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(m.head.method == .other("get"))
        for (text, method) in [("GET", HTTPMethod.get), ("HEAD", .head), ("POST", .post), ("PUT", .put), ("DELETE", .delete),
                               ("OPTIONS", .options), ("TRACE", .trace), ("PATCH", .patch)] {
            #expect(runRequest("\(text) / HTTP/1.1\r\nHost: a\r\n\r\n").head.method == method)
        }
        let e = runRequest("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok")
        #expect(e.head.expectContinue)
        #expect(e.head.header(.expect) == "100-Continue")
        #expect(e.body == "ok")
    }

    @Test func leadingEmptyLines() {
        let r = runRequest("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", step: 1)
        #expect(r.error == nil)
        #expect(r.head.path == "/")
    }

    @Test func endOfInput() {
        #expect(runRequest("", endOfInput: true).error == nil)
        #expect(runRequest("GET / HTTP/1.1\r\nHost: a\r\n\r\n", endOfInput: true).error == nil)
        #expect(runRequest("\r\n", endOfInput: true).error == nil)
        #expect(runRequest("GET / HT", endOfInput: true).error?.category == HTTP1ParseError.incompleteMessage)
        #expect(runRequest("GET / HTTP/1.1\r\nHost: a\r\n", endOfInput: true).error?.category == HTTP1ParseError.incompleteMessage)
        #expect(runRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab", endOfInput: true).error?.status == 400)
        #expect(runRequest("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n", endOfInput: true).error != nil)
    }

    @Test func isIdle() {
        var p = HTTP1RequestParser()
        #expect(p.isIdle)
        var buf = ByteBuffer(string: "GET / HTTP/1.1\r\n")
        #expect(p.next(&buf) == nil)
        #expect(!p.isIdle)
        buf.writeString("Host: a\r\n\r\n")
        _ = p.next(&buf)
        #expect(!p.isIdle)
        _ = p.next(&buf)
        #expect(p.isIdle)
    }

    /// A big head trickled in one byte at a time parses (the scan resumes where it stopped).
    @Test func largeHeadTrickled() {
        var input = "GET / HTTP/1.1\r\nHost: a\r\n"
        for i in 0..<90 { input += "X-Header-\(i): " + String(repeating: "v", count: 200) + "\r\n" }
        input += "\r\n"
        let r = runRequest(input, step: 1)
        #expect(r.error == nil)
        #expect(r.head.fields.slots.count == 91)
        #expect(r.head.header(HeaderName("x-header-89"))?.count == 200)
    }
}

@Suite("HTTP1 request parser: hostile input")
struct HTTP1RequestHostileTests {
    static let cases: [(String, String, Int)] = [
        // framing
        ("CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
        ("conflicting CL lines", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        ("conflicting CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400),
        ("CL empty element", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", 400),
        ("CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400),
        ("CL letters", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n", 400),
        ("CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400),
        ("CL minus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", 400),
        ("CL plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
        ("CL inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400),
        ("CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", 400),
        ("CL huge overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
        ("TE final gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        ("TE only gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        ("TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
        ("TE chunked twice, two lines", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("TE unknown", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n", 501),
        ("TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501),
        ("TE gzip then chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("TE chunked with parameter", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 400),
        ("TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400),
        ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("TE with vertical tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \u{0B}chunked\r\n\r\n", 400),
        // chunks
        ("chunk size not hex", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ("chunk size empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", 400),
        ("chunk size signed", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 400),
        ("chunk size 0x", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n", 400),
        ("chunk size overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 400),
        ("chunk size trailing space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400),
        ("chunk size bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
        ("chunk data without CRLF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
        ("chunk data with LF only", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400),
        ("chunk data CR then junk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\rX0\r\n\r\n", 400),
        ("chunk ext empty name", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;=x\r\nhello\r\n0\r\n\r\n", 400),
        ("chunk ext no value", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\r\nhello\r\n0\r\n\r\n", 400),
        ("chunk ext unterminated quote", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"x\r\nhello\r\n0\r\n\r\n", 400),
        ("chunk ext control byte", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\u{01}\r\nhello\r\n0\r\n\r\n", 400),
        ("chunk ext bare CR", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\rc\r\nhello\r\n0\r\n\r\n", 400),
        ("chunk ext too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=" + String(repeating: "x", count: 5000), 400),
        ("trailer obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n c\r\n\r\n", 400),
        ("trailer bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\n\r\n", 400),
        ("trailer bad name", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA B: c\r\n\r\n", 400),
        ("trailer too large", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: " + String(repeating: "x", count: 40000) + "\r\n\r\n", 431),
        ("too many trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + String(repeating: "A: b\r\n", count: 101) + "\r\n", 431),
        // line endings and bytes
        ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
        ("obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400),
        ("space before first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
        ("bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
        ("bare CR as line end", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
        ("bare CR in request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("CR CR LF", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400),
        ("bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
        ("bare LF header", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
        ("bare LF end of head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
        ("leading bare LF", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("too many leading CRLF", String(repeating: "\r\n", count: 5) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("name with @", "GET / HTTP/1.1\r\nHost: a\r\nX@Y: 1\r\n\r\n", 400),
        ("name with slash", "GET / HTTP/1.1\r\nHost: a\r\nX/Y: 1\r\n\r\n", 400),
        ("name non-ASCII", "GET / HTTP/1.1\r\nHost: a\r\nX\u{e9}: 1\r\n\r\n", 400),
        ("empty name", "GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", 400),
        ("no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400),
        ("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
        ("tab before colon", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 1\r\n\r\n", 400),
        ("NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{0}b\r\n\r\n", 400),
        ("SOH in value", "GET / HTTP/1.1\r\nHost: a\r\nX: \u{01}\r\n\r\n", 400),
        ("DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: abcdefgh\u{7f}ijkl\r\n\r\n", 400),
        ("ESC late in long value", "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "a", count: 61) + "\u{1b}\r\n\r\n", 400),
        // request line
        ("space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("non-ASCII target", "GET /caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("DEL in target", "GET /a\u{7f} HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("backslash in target", "GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("quote in target", "GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("method not a token", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("method empty", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("no target", "GET HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("no version", "GET /\r\nHost: a\r\n\r\n", 400),
        ("trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
        ("lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
        ("version junk", "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400),
        ("version two digits", "GET / HTTP/11.1\r\nHost: a\r\n\r\n", 400),
        ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505),
        ("CONNECT", "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", 501),
        ("asterisk OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 501),
        ("asterisk GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("absolute ftp", "GET ftp://a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("absolute userinfo", "GET http://u:p@a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("absolute empty authority", "GET http:///b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("absolute bad authority", "GET http://a\"b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        // Host
        ("missing Host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
        ("missing Host, absolute-form", "GET http://a/ HTTP/1.1\r\n\r\n", 400),
        ("two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        ("two Host, cased", "GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n", 400),
        ("Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        ("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
        ("Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        // Expect
        ("Expect other", "GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", 417),
        ("Expect list", "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x\r\n\r\n", 417),
    ]

    @Test(arguments: cases)
    func rejected(name: String, input: String, status: Int) {
        for step in [0, 1, 5] {
            let r = runRequest(input, step: step)
            #expect(r.error?.status == status, "\(name) (step \(step)): \(String(describing: r.error))")
            #expect(r.eventsAfterError == 0)
            #expect(r.ends == 0 || r.heads.count > r.ends, "\(name): no message may complete")
        }
    }

    @Test func requestLineTooLong() {
        let limits = HTTP1Limits(maxURIBytes: 100)
        let long = "GET /" + String(repeating: "a", count: 100) + " HTTP/1.1\r\nHost: a\r\n\r\n"
        let e = runRequest(long, limits: limits).error
        #expect(e?.status == 414)
        #expect(e?.category == HTTP1ParseError.uriTooLong)
        // Detected before the line ends.
        #expect(runRequest("GET /" + String(repeating: "a", count: 300), limits: limits).error?.status == 414)
        #expect(runRequest("GET /" + String(repeating: "a", count: 99) + " HTTP/1.1\r\nHost: a\r\n\r\n", limits: limits).error == nil)
    }

    /// Found by the fuzzer: a too-long line ended by a bare LF was 400 when read at once and 414
    /// when trickled. Limits are now checked first, so the split does not change the verdict.
    @Test func limitVerdictDoesNotDependOnSplit() {
        let limits = HTTP1Limits(maxHeaderBytes: 100, maxURIBytes: 100)
        let requestLine = "GET /" + String(repeating: "a", count: 170) + "\n"
        let header = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 120) + "\n"
        let trailer = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + String(repeating: "a", count: 120) + "\n"
        for (input, status) in [(requestLine, 414), (header, 431), (trailer, 431)] {
            for step in [0, 1, 2, 9] {
                #expect(runRequest(input, step: step, limits: limits).error?.status == status, "step \(step)")
            }
        }
        let status = "HTTP/1.1 200 " + String(repeating: "a", count: 120) + "\n"
        for step in [0, 1, 2, 9] {
            #expect(runResponse(status, step: step, limits: limits).error?.category == HTTP1ParseError.headerTooLarge)
        }
    }

    @Test func headerSectionTooLarge() {
        let limits = HTTP1Limits(maxHeaderBytes: 200, maxHeaders: 5)
        let big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "v", count: 200) + "\r\n\r\n"
        let e = runRequest(big, limits: limits).error
        #expect(e?.status == 431)
        #expect(e?.category == HTTP1ParseError.headerTooLarge)
        // Detected while trickling, before any line ends.
        #expect(runRequest("GET / HTTP/1.1\r\nX: " + String(repeating: "v", count: 300), step: 10, limits: limits).error?.status == 431)
        let many = "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "A: b\r\n", count: 5) + "\r\n"
        #expect(runRequest(many, limits: limits).error?.status == 431)
        let enough = "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "A: b\r\n", count: 4) + "\r\n"
        #expect(runRequest(enough, limits: limits).error == nil)
    }

    @Test func errorIsFinal() {
        var p = HTTP1RequestParser()
        var buf = ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a b\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        guard case .error(let e) = p.next(&buf) else {
            Issue.record("expected an error")
            return
        }
        #expect(e.category == HTTP1ParseError.invalidHost)
        #expect(p.next(&buf) == nil)
        #expect(p.endOfInput() == nil)
    }
}

@Suite("HTTP1 byte classes")
struct HTTP1ByteClassTests {
    /// The literal table matches the RFC character sets.
    @Test func tableMatchesTheRFCSets() {
        let alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        let digit = "0123456789"
        let token = Set((alpha + digit + "!#$%&'*+-.^_`|~").utf8)
        let unreserved = alpha + digit + "-._~"
        let subDelims = "!$&'()*+,;="
        let path = Set((unreserved + subDelims + ":@/%").utf8)
        let host = Set((unreserved + subDelims + ":[]%").utf8)
        for i in 0..<256 {
            let b = UInt8(i)
            #expect(h1IsToken(b) == token.contains(b), "token \(i)")
            #expect(h1IsTarget(b) == (path.contains(b) || b == UInt8(ascii: "?")), "query \(i)")
            #expect((h1ByteClasses[i] & H1ByteClass.path != 0) == path.contains(b), "path \(i)")
            #expect((h1ByteClasses[i] & H1ByteClass.underscore != 0) == (b == UInt8(ascii: "_")), "underscore \(i)")
            #expect(h1IsHost(b) == host.contains(b), "host \(i)")
        }
    }
}
