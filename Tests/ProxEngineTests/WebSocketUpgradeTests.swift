import NIOCore
import ProxCore
import Testing
@testable import ProxEngine

/// WebSocket upgrade: the framers, the writer, and the exchange state machine's tunnel events.
@Suite struct WebSocketUpgradeTests {
    typealias M = ExchangeStateMachine
    static let t0 = ExchangeStateMachineTests.t0
    static func at(_ ms: Int64) -> NIODeadline { ExchangeStateMachineTests.at(ms) }
    static let limits = ExchangeStateMachineTests.limits

    static let handshake = "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n"

    // MARK: request framer

    @Test func handshakeIsRecognisedAndItsHopByHopLinesRemoved() {
        let r = runRequest(Array(Self.handshake.utf8))
        #expect(r.head.upgradeWebSocket)
        // Upgrade and Connection are hop-by-hop; the Sec-WebSocket-* lines are end to end.
        #expect(r.head.fields.effective.map(\.name) == ["Host", "Sec-WebSocket-Key", "Sec-WebSocket-Version"])
    }

    @Test(arguments: [
        ("no Connection: upgrade", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"),
        ("no Upgrade", "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n"),
        ("another protocol", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n"),
        ("POST", "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"),
        ("HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"),
        ("a body", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nContent-Length: 1\r\n\r\nx"),
    ])
    func notAHandshake(name: String, input: String) {
        let r = runRequest(Array(input.utf8))
        #expect(r.error == nil, "\(name)")
        #expect(!r.head.upgradeWebSocket, "\(name)")
    }

    @Test func aZeroContentLengthIsNoBody() {
        let r = runRequest(Array("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n".utf8))
        #expect(r.head.upgradeWebSocket)
    }

    @Test func tokensAreCaseInsensitiveAndListed() {
        let r = runRequest(Array("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: foo, WebSocket\r\nConnection: keep-alive, UPGRADE\r\n\r\n".utf8))
        #expect(r.head.upgradeWebSocket)
    }

    // MARK: response framer

    @Test func a101AnswersAnUpgradeAndStopsFraming() {
        var p = HTTP1ResponseParser()
        p.reset(requestMethod: .get, upgrade: true)
        var buf = ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\n")
        buf.writeBytes([0x81, 0x02, 0x68, 0x69])
        guard case .head(let h) = p.next(&buf) else { Issue.record("no head"); return }
        #expect(h.status == 101)
        #expect(h.framing == .none)
        #expect(h.fields.effective.map(\.name) == ["Sec-WebSocket-Accept"])
        // The frame after the head is left for the tunnel.
        #expect(p.next(&buf) == nil)
        #expect(buf.readableBytes == 4)
        #expect(p.endOfInput() == nil)
    }

    @Test func a101WithoutTheUpgradeHeadersIsRefused() {
        var p = HTTP1ResponseParser()
        p.reset(requestMethod: .get, upgrade: true)
        var buf = ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
        guard case .error(let e) = p.next(&buf) else { Issue.record("no error"); return }
        #expect(e.status == 502)
        #expect(e.category == HTTP1ParseError.unexpectedSwitchingProtocols)
    }

    @Test func aNon101AnswerToAnUpgradeIsANormalResponse() {
        var p = HTTP1ResponseParser()
        p.reset(requestMethod: .get, upgrade: true)
        var buf = ByteBuffer(string: "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
        guard case .head(let h) = p.next(&buf) else { Issue.record("no head"); return }
        #expect(h.status == 403)
        guard case .body = p.next(&buf), case .end = p.next(&buf) else { Issue.record("no body"); return }
    }

    // MARK: writer

    @Test func writerAddsTheUpgradeLines() {
        let head = RequestHead.make(method: .get, target: "/chat", headers: [("Host", "a"), ("Sec-WebSocket-Key", "x")])
        var out = ByteBuffer()
        HTTP1Writer.writeRequestHead(head, framing: .none, upgrade: true, into: &out)
        #expect(String(buffer: out) == "GET /chat HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
        var resp = ResponseHead(status: 101)
        resp.fields.add(HeaderName("Sec-WebSocket-Accept"), "abc")
        var r = ByteBuffer()
        HTTP1Writer.writeResponseHead(resp, framing: .none, keepAlive: false, upgrade: true, into: &r)
        #expect(String(buffer: r) == "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    }

    // MARK: the machine

    static func awaitingUpgrade() -> M {
        var m = ExchangeStateMachineTests.chain()
        #expect(m.flowStep(.proxyUpgrade) == .dispatch(attempt: 1, sendContinue: false))
        #expect(m.upgradeOffered)
        #expect(m.upstreamConnected(attempt: 1, reused: false, now: at(1)) == .sendUpstreamHead(pendingBody: false, lastChunk: false))
        return m
    }

    @Test func a101StartsATunnelThatEndsTheConnection() {
        var m = Self.awaitingUpgrade()
        #expect(m.upstreamResponseHead(attempt: 1, status: 101, framing: .none, now: Self.at(2)) == .startTunnel)
        #expect(m.state == .tunnel(attempt: 1))
        #expect(m.isTunnel && m.responseStarted)
        // The relay owns both connections now: no HTTP event, timeout or failure applies.
        #expect(m.currentAttempt == nil)
        #expect(m.upstreamClosed(attempt: 1, receivedAny: true) == .none)
        #expect(m.upstreamResponseEnd(attempt: 1, upstreamKeepAlive: true) == .none)
        #expect(m.requestBodyPart(bytes: 10) == .none)
        #expect(m.expiredTimeout(now: Self.at(1_000_000), partialHead: false, limits: Self.limits) == nil)
        #expect(m.timedOut(.upstreamBodyIdle) == .none)
        #expect(m.clientClosed() == .none)
        #expect(m.drain() == .none)
        #expect(m.state == .tunnel(attempt: 1))
        #expect(m.tunnelEnded() == .finishTunnel)
        #expect(m.isClosed)
        #expect(m.tunnelEnded() == .none)
    }

    @Test func a101ToARequestThatDidNotAskIsA502() {
        var m = ExchangeStateMachineTests.awaiting()
        #expect(!m.upgradeOffered)
        #expect(m.upstreamResponseHead(attempt: 1, status: 101, framing: .none, now: Self.at(2))
                == .respond(failure: .upstreamBadResponse, keepAlive: true))
        #expect(m.isIdle)
    }

    @Test func aNon101AnswerToAnUpgradeIsProxiedNormally() {
        var m = Self.awaitingUpgrade()
        #expect(m.upstreamResponseHead(attempt: 1, status: 403, framing: .contentLength(2), now: Self.at(2))
                == .writeResponseHead(framing: .contentLength(2), keepAlive: true, noBody: false))
        #expect(m.upstreamResponseEnd(attempt: 1, upstreamKeepAlive: true) == .endResponse(lastChunk: false, releaseUpstream: true, keepAlive: true))
        #expect(m.isIdle)
        // The next request on the connection is not an upgrade unless it says so.
        m.requestHead(ExchangeStateMachineTests.info(), draining: false, now: Self.at(3))
        #expect(!m.upgradeOffered)
    }

    @Test func aStaleEventOfAnOtherAttemptDoesNotStartATunnel() {
        var m = Self.awaitingUpgrade()
        #expect(m.upstreamResponseHead(attempt: 2, status: 101, framing: .none, now: Self.at(2)) == .none)
        #expect(m.state == .awaitingResponse(attempt: 1))
    }
}
