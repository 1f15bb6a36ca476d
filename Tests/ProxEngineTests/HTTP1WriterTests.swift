import NIOCore
import ProxCore
@testable import ProxEngine
import Testing

private func parsedHead(_ s: String) -> RequestHead {
    let r = runRequest(s)
    precondition(r.error == nil, "\(String(describing: r.error))")
    return r.head
}

private func requestBytes(_ head: RequestHead, _ framing: BodyFraming) -> String {
    var out = ByteBuffer()
    HTTP1Writer.writeRequestHead(head, framing: framing, into: &out)
    return String(buffer: out)
}

private func responseBytes(_ head: ResponseHead, _ framing: BodyFraming, keepAlive: Bool, clientVersionMinor: UInt8 = 1) -> String {
    var out = ByteBuffer()
    HTTP1Writer.writeResponseHead(head, framing: framing, keepAlive: keepAlive, clientVersionMinor: clientVersionMinor, into: &out)
    return String(buffer: out)
}

@Suite("HTTP1 writer")
struct HTTP1WriterTests {
    @Test func untouchedRequest() {
        let h = parsedHead("GET /a?b=1 HTTP/1.1\r\nUser-Agent: t\r\nHost: Example.com:8080\r\nAccept:  */* \t\r\n"
            + "Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nX-Tab:\tv\r\nCookie: c=1\r\n\r\n")
        #expect(requestBytes(h, .none) == "GET /a?b=1 HTTP/1.1\r\nHost: Example.com:8080\r\nUser-Agent: t\r\nAccept: */*\r\nX-Tab: v\r\nCookie: c=1\r\n\r\n")
    }

    @Test func framingLines() {
        let post = parsedHead("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nX: y\r\n\r\n")
        #expect(requestBytes(post, post.framing) == "POST /u HTTP/1.1\r\nHost: a\r\nX: y\r\nContent-Length: 12\r\n\r\n")
        let chunked = parsedHead("PUT /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(requestBytes(chunked, .chunked) == "PUT /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(requestBytes(chunked, .contentLength(9_223_372_036_854_775_807)).contains("Content-Length: 9223372036854775807\r\n"))
        #expect(requestBytes(chunked, .contentLength(0)).contains("Content-Length: 0\r\n"))
    }

    @Test func editsApplied() {
        var h = parsedHead("GET /old?q=1 HTTP/1.1\r\nHost: a.test\r\nX-Keep: 1\r\nX-Remove: 2\r\nX-Set: old\r\nX-Keep2: 3\r\n\r\n")
        h.fields.remove(HeaderName("x-remove"))
        h.fields.set(HeaderName("X-Set"), "new")
        h.fields.add(.xForwardedFor, "10.0.0.1")
        h.fields.add(.contentLength, "999") // framing is the writer's: ignored
        h.setTarget("/new/path?q=2")
        h.rewrittenHost = "backend.internal:9000"
        #expect(requestBytes(h, .none) == "GET /new/path?q=2 HTTP/1.1\r\nHost: backend.internal:9000\r\nX-Keep: 1\r\nX-Keep2: 3\r\n"
            + "X-Set: new\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n")
    }

    /// Values built from request data (say, a percent-decoded query parameter) cannot split the
    /// head: CR/LF/NUL become SP in values, targets are percent-encoded, bad names are dropped.
    @Test func noHeadSplitting() {
        var h = parsedHead("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        h.fields.add(HeaderName("X-User"), "bob\r\nX-Admin: 1")
        h.fields.add(HeaderName("X Bad"), "1")
        h.fields.add(HeaderName("X-Nul"), "a\u{0}b")
        h.setTarget("/p a\r\nth?q=\u{e9}#f")
        h.rewrittenHost = "evil\r\nX: 1"
        #expect(requestBytes(h, .none) == "GET /p%20a%0D%0Ath?q=%C3%A9%23f HTTP/1.1\r\nHost: evil  X: 1\r\n"
            + "X-User: bob  X-Admin: 1\r\nX-Nul: a b\r\n\r\n")
        var r = ResponseHead(status: 200, reason: "OK\r\nSet-Cookie: x=1")
        r.fields.add(.location, "/x\ny")
        #expect(responseBytes(r, .contentLength(0), keepAlive: true) == "HTTP/1.1 200 OK  Set-Cookie: x=1\r\nLocation: /x y\r\nContent-Length: 0\r\n\r\n")
    }

    @Test func hostFromStageSet() {
        var h = parsedHead("GET / HTTP/1.1\r\nHost: a.test\r\nX: 1\r\n\r\n")
        h.fields.set(.host, "b.test")
        #expect(requestBytes(h, .none) == "GET / HTTP/1.1\r\nHost: b.test\r\nX: 1\r\n\r\n")
        // A stage adding a second Host never produces two.
        var g = parsedHead("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        g.fields.add(.host, "c.test")
        #expect(requestBytes(g, .none) == "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    }

    @Test func http10AndAbsoluteForm() {
        // HTTP/1.0 without Host goes upstream as HTTP/1.1 with an empty Host (RFC 9112 3.2).
        let h = parsedHead("GET /x HTTP/1.0\r\nA: b\r\n\r\n")
        #expect(requestBytes(h, .none) == "GET /x HTTP/1.1\r\nHost: \r\nA: b\r\n\r\n")
        let a = parsedHead("GET http://up.test:81/p?x HTTP/1.1\r\nHost: other\r\nA: b\r\n\r\n")
        #expect(requestBytes(a, .none) == "GET /p?x HTTP/1.1\r\nHost: up.test:81\r\nA: b\r\n\r\n")
        let b = parsedHead("OPTIONS http://up.test?x=1 HTTP/1.1\r\nHost: up.test\r\n\r\n")
        #expect(requestBytes(b, .none) == "OPTIONS /?x=1 HTTP/1.1\r\nHost: up.test\r\n\r\n")
        let m = parsedHead("PURGE /c HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(requestBytes(m, .none) == "PURGE /c HTTP/1.1\r\nHost: a\r\n\r\n")
        // Any token is a method, "#" included (found by the fuzzer: it was escaped).
        let t = parsedHead("X#~|! /c HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(requestBytes(t, .none) == "X#~|! /c HTTP/1.1\r\nHost: a\r\n\r\n")
        var made = parsedHead("GET /c HTTP/1.1\r\nHost: a\r\n\r\n")
        made.method = .other("BAD METHOD")
        #expect(requestBytes(made, .none).hasPrefix("BAD%20METHOD /c HTTP/1.1\r\n"))
    }

    @Test func madeHeads() {
        let h = RequestHead.make(method: .delete, target: "/r", headers: [("Host", "h"), ("X-A", "1")])
        #expect(requestBytes(h, .none) == "DELETE /r HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n")
    }

    @Test func responses() {
        let up = runResponse("HTTP/1.1 404 Nope\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc").head
        #expect(responseBytes(up, up.framing, keepAlive: true) == "HTTP/1.1 404 Nope\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n")
        #expect(responseBytes(up, .chunked, keepAlive: false) == "HTTP/1.1 404 Nope\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        #expect(responseBytes(up, up.framing, keepAlive: true, clientVersionMinor: 0) == "HTTP/1.1 404 Nope\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n")
        #expect(responseBytes(up, .untilClose, keepAlive: true) == "HTTP/1.1 404 Nope\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")

        var local = ResponseHead(status: 503)
        local.fields.add(.server, "prox")
        #expect(responseBytes(local, .contentLength(0), keepAlive: true) == "HTTP/1.1 503 Service Unavailable\r\nServer: prox\r\nContent-Length: 0\r\n\r\n")

        let cont = ResponseHead(status: 100)
        #expect(responseBytes(cont, .none, keepAlive: false) == "HTTP/1.1 100 Continue\r\n\r\n")

        let head = runResponse("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", method: .head).head
        #expect(responseBytes(head, head.framing, keepAlive: true) == "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n")
    }

    @Test func responseEdits() {
        var up = runResponse("HTTP/1.1 200 OK\r\nServer: nginx\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n").head
        up.fields.remove(.server)
        up.fields.set(HeaderName("X-A"), "2")
        up.fields.add(.via, "1.1 prox")
        #expect(responseBytes(up, .contentLength(0), keepAlive: true) == "HTTP/1.1 200 OK\r\nX-A: 2\r\nVia: 1.1 prox\r\nContent-Length: 0\r\n\r\n")
    }

    @Test func chunks() {
        var out = ByteBuffer()
        HTTP1Writer.writeChunk(ByteBuffer(string: "hello"), into: &out)
        HTTP1Writer.writeChunk(ByteBuffer(), into: &out)
        HTTP1Writer.writeChunkHeader(size: 255, into: &out)
        HTTP1Writer.writeChunkHeader(size: 0x1000, afterChunk: true, into: &out)
        HTTP1Writer.writeChunkEnd(into: &out)
        HTTP1Writer.writeLastChunk(into: &out)
        HTTP1Writer.writeLastChunk(afterChunk: true, into: &out)
        #expect(String(buffer: out) == "5\r\nhello\r\nff\r\n\r\n1000\r\n\r\n0\r\n\r\n\r\n0\r\n\r\n")
    }

    /// What the writer produces, the parser reads back.
    @Test func roundTrip() {
        var wire = ByteBuffer()
        let h = parsedHead("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX: 1\r\n\r\n")
        HTTP1Writer.writeRequestHead(h, framing: .chunked, into: &wire)
        let parts = ["abc", String(repeating: "z", count: 300), "!"]
        for (i, p) in parts.enumerated() {
            HTTP1Writer.writeChunkHeader(size: p.utf8.count, afterChunk: i > 0, into: &wire)
            wire.writeString(p)
        }
        HTTP1Writer.writeLastChunk(afterChunk: true, into: &wire)
        let r = runRequest(Array(wire.readableBytesView), step: 3)
        #expect(r.error == nil)
        #expect(r.body == parts.joined())
        #expect(r.ends == 1)
        #expect(lines(r.head.fields) == ["Host: a", "X: 1"])
    }
}
