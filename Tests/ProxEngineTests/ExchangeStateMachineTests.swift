import NIOCore
import ProxCore
import Testing
@testable import ProxEngine

/// The exchange state machine with no channel: events in, actions out.
@Suite struct ExchangeStateMachineTests {
    typealias M = ExchangeStateMachine
    typealias Action = ExchangeStateMachine.Action

    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
    static func at(_ ms: Int64) -> NIODeadline { t0 + .milliseconds(ms) }

    static func info(_ framing: BodyFraming = .none, keepAlive: Bool = true, minor: UInt8 = 1, head: Bool = false,
                     idempotent: Bool = true, expect: Bool = false) -> M.RequestInfo {
        M.RequestInfo(framing: framing, keepAlive: keepAlive, versionMinor: minor, isHead: head,
                      idempotent: idempotent, expectContinue: expect)
    }

    static let limits = M.TimeoutLimits(clientHeader: 10_000, clientBodyIdle: 30_000, keepAliveIdle: 60_000,
                                        responseHead: 5_000, upstreamBodyIdle: 7_000)

    // MARK: driving helpers

    static func chain(_ i: M.RequestInfo = info(), draining: Bool = false) -> M {
        var m = M(now: t0)
        m.requestHead(i, draining: draining, now: t0)
        #expect(m.state == .chain)
        return m
    }

    static func connecting(_ i: M.RequestInfo = info()) -> M {
        var m = chain(i)
        #expect(m.flowStep(.proxy) == .dispatch(attempt: 1, sendContinue: false))
        return m
    }

    static func awaiting(_ i: M.RequestInfo = info(), reused: Bool = false) -> M {
        var m = connecting(i)
        _ = m.upstreamConnected(attempt: 1, reused: reused, now: at(1))
        #expect(m.state == .awaitingResponse(attempt: 1))
        return m
    }

    static func streaming(_ i: M.RequestInfo = info(), framing: BodyFraming = .contentLength(2)) -> M {
        var m = awaiting(i)
        if case .writeResponseHead = m.upstreamResponseHead(attempt: 1, status: 200, framing: framing, now: at(2)) {} else {
            Issue.record("no response head written")
        }
        #expect(m.responseStarted)
        return m
    }

    // MARK: the whole way through

    @Test func proxiedGetGoesThroughAndKeepsTheConnection() {
        var m = M(now: Self.t0)
        #expect(m.isIdle)
        m.clientBytesArrived(now: Self.t0)
        m.requestHead(Self.info(), draining: false, now: Self.t0)
        #expect(m.isRequestBodyDone)
        #expect(m.flowStep(.proxy) == .dispatch(attempt: 1, sendContinue: false))
        #expect(m.currentAttempt == 1)
        #expect(m.upstreamConnected(attempt: 1, reused: true, now: Self.at(1)) == .sendUpstreamHead(pendingBody: false, lastChunk: false))
        #expect(m.requestSentAt == Self.at(1))
        #expect(m.requestEnd(now: Self.at(1)) == .none)  // a bodiless request ended with its head
        #expect(m.upstreamResponseHead(attempt: 1, status: 200, framing: .contentLength(2), now: Self.at(2))
                == .writeResponseHead(framing: .contentLength(2), keepAlive: true, noBody: false))
        #expect(m.upstreamResponseBodyPart(attempt: 1, bytes: 2, now: Self.at(3)) == .writeResponseBody(chunked: false))
        #expect(m.upstreamResponseBodyPart(attempt: 1, bytes: 0, now: Self.at(3)) == .none)  // never an empty piece
        #expect(m.upstreamResponseEnd(attempt: 1, upstreamKeepAlive: true)
                == .endResponse(lastChunk: false, releaseUpstream: true, keepAlive: true))
        #expect(m.isIdle)
        m.exchangeFinished(now: Self.at(4))
        #expect(m.idleSince == Self.at(4))
        // The next request on the connection starts afresh.
        m.requestHead(Self.info(), draining: false, now: Self.at(5))
        #expect(m.state == .chain)
        #expect(m.bodyBytes == 0)
    }

    @Test func chunkedUploadStreamsAndEndsWithLastChunk() {
        var m = Self.chain(Self.info(.chunked))
        #expect(!m.isRequestBodyDone)
        #expect(m.requestBodyPart(bytes: 10) == .bufferBody(pauseReads: false, bodyReady: false))
        #expect(m.flowStep(.proxy) == .dispatch(attempt: 1, sendContinue: false))
        #expect(m.requestBodyPart(bytes: 10) == .bufferBody(pauseReads: false, bodyReady: false))
        #expect(m.upstreamConnected(attempt: 1, reused: false, now: Self.at(1)) == .sendUpstreamHead(pendingBody: true, lastChunk: false))
        #expect(m.requestSentAt == nil)  // the body is still coming
        #expect(m.requestBodyPart(bytes: 5) == .forwardBody(chunked: true))
        #expect(m.requestEnd(now: Self.at(9)) == .endUpstreamBody(lastChunk: true))
        #expect(m.requestSentAt == Self.at(9))
        #expect(m.bodyBytes == 25)
    }

    @Test func bodyEndedBeforeConnectGoesWithTheHead() {
        var m = Self.chain(Self.info(.chunked))
        _ = m.requestBodyPart(bytes: 3)
        #expect(m.requestEnd(now: Self.at(0)) == .none)
        #expect(m.flowStep(.proxy) == .dispatch(attempt: 1, sendContinue: false))
        #expect(m.upstreamConnected(attempt: 1, reused: false, now: Self.at(1)) == .sendUpstreamHead(pendingBody: true, lastChunk: true))
        var fixed = Self.chain(Self.info(.contentLength(3)))
        _ = fixed.requestBodyPart(bytes: 3)
        _ = fixed.requestEnd(now: Self.at(0))
        _ = fixed.flowStep(.proxy)
        #expect(fixed.upstreamConnected(attempt: 1, reused: false, now: Self.at(1)) == .sendUpstreamHead(pendingBody: true, lastChunk: false))
    }

    @Test func heldBodyPausesReadsPastTheLimit() {
        var m = Self.connecting(Self.info(.contentLength(1 << 20)))
        #expect(m.requestBodyPart(bytes: M.maxPendingBody) == .bufferBody(pauseReads: false, bodyReady: false))
        #expect(m.requestBodyPart(bytes: 1) == .bufferBody(pauseReads: true, bodyReady: false))
    }

    @Test func expectContinueIsAnsweredOnlyWhenABodyIsComing() {
        var m = Self.chain(Self.info(.contentLength(5), expect: true))
        #expect(m.flowStep(.proxy) == .dispatch(attempt: 1, sendContinue: true))
        var bodiless = Self.chain(Self.info(expect: true))
        #expect(bodiless.flowStep(.proxy) == .dispatch(attempt: 1, sendContinue: false))
    }

    // MARK: keep-alive, decided once

    struct KeepAliveCase: CustomTestStringConvertible, Sendable {
        var keepAlive: Bool, framing: BodyFraming, ended: Bool, draining: Bool, expected: Bool
        var testDescription: String { "keepAlive \(keepAlive) \(framing) ended \(ended) draining \(draining)" }
    }

    @Test(arguments: [
        KeepAliveCase(keepAlive: true, framing: .none, ended: true, draining: false, expected: true),
        KeepAliveCase(keepAlive: false, framing: .none, ended: true, draining: false, expected: false),
        KeepAliveCase(keepAlive: true, framing: .none, ended: true, draining: true, expected: false),
        KeepAliveCase(keepAlive: true, framing: .contentLength(4), ended: true, draining: false, expected: true),
        // An answer before the body was read: the connection cannot carry another request.
        KeepAliveCase(keepAlive: true, framing: .contentLength(4), ended: false, draining: false, expected: false),
        KeepAliveCase(keepAlive: true, framing: .chunked, ended: false, draining: false, expected: false),
    ])
    func localAnswerKeepAlive(_ c: KeepAliveCase) {
        var m = Self.chain(Self.info(c.framing, keepAlive: c.keepAlive), draining: c.draining)
        if c.ended && c.framing != .none {
            _ = m.requestBodyPart(bytes: 4)
            _ = m.requestEnd(now: Self.t0)
        }
        #expect(m.flowStep(.respond) == .respond(failure: nil, keepAlive: c.expected))
        #expect(m.state == (c.expected ? .idle : .closed))
        // The proxied path decides the same way.
        var p = Self.chain(Self.info(c.framing, keepAlive: c.keepAlive), draining: c.draining)
        if c.ended && c.framing != .none {
            _ = p.requestBodyPart(bytes: 4)
            _ = p.requestEnd(now: Self.t0)
        }
        _ = p.flowStep(.proxy)
        _ = p.upstreamConnected(attempt: 1, reused: false, now: Self.at(1))
        #expect(p.upstreamResponseHead(attempt: 1, status: 200, framing: .contentLength(1), now: Self.at(2))
                == .writeResponseHead(framing: .contentLength(1), keepAlive: c.expected, noBody: false))
    }

    struct FramingCase: CustomTestStringConvertible, Sendable {
        var minor: UInt8, head: Bool, status: Int, upstream: BodyFraming
        var framing: BodyFraming, keepAlive: Bool, noBody: Bool
        var testDescription: String { "1.\(minor) head \(head) \(status) \(upstream)" }
    }

    @Test(arguments: [
        FramingCase(minor: 1, head: false, status: 200, upstream: .contentLength(5), framing: .contentLength(5), keepAlive: true, noBody: false),
        FramingCase(minor: 1, head: false, status: 200, upstream: .chunked, framing: .chunked, keepAlive: true, noBody: false),
        // A body delimited by the upstream's close goes chunked to an HTTP/1.1 client ...
        FramingCase(minor: 1, head: false, status: 200, upstream: .untilClose, framing: .chunked, keepAlive: true, noBody: false),
        // ... and until the close to an HTTP/1.0 one, which cannot read chunked either.
        FramingCase(minor: 0, head: false, status: 200, upstream: .untilClose, framing: .untilClose, keepAlive: false, noBody: false),
        FramingCase(minor: 0, head: false, status: 200, upstream: .chunked, framing: .untilClose, keepAlive: false, noBody: false),
        FramingCase(minor: 1, head: true, status: 200, upstream: .contentLength(5), framing: .none, keepAlive: true, noBody: true),
        FramingCase(minor: 1, head: false, status: 204, upstream: .none, framing: .none, keepAlive: true, noBody: true),
        FramingCase(minor: 1, head: false, status: 304, upstream: .contentLength(9), framing: .none, keepAlive: true, noBody: true),
    ])
    func responseFramingForTheClient(_ c: FramingCase) {
        var m = Self.awaiting(Self.info(keepAlive: true, minor: c.minor, head: c.head))
        #expect(m.upstreamResponseHead(attempt: 1, status: c.status, framing: c.upstream, now: Self.at(2))
                == .writeResponseHead(framing: c.framing, keepAlive: c.keepAlive, noBody: c.noBody))
        #expect(m.upstreamResponseEnd(attempt: 1, upstreamKeepAlive: true)
                == .endResponse(lastChunk: c.framing == .chunked && !c.noBody, releaseUpstream: true, keepAlive: c.keepAlive))
    }

    @Test func upstreamKeptOnlyWhenBothSidesAreDone() {
        var m = Self.awaiting()
        _ = m.upstreamResponseHead(attempt: 1, status: 200, framing: .contentLength(1), now: Self.at(2))
        #expect(m.upstreamResponseEnd(attempt: 1, upstreamKeepAlive: false)
                == .endResponse(lastChunk: false, releaseUpstream: false, keepAlive: true))
        // The response ended while the request body was still coming: neither side is reusable.
        var early = Self.connecting(Self.info(.contentLength(10)))
        _ = early.upstreamConnected(attempt: 1, reused: false, now: Self.at(1))
        _ = early.upstreamResponseHead(attempt: 1, status: 200, framing: .contentLength(1), now: Self.at(2))
        #expect(early.upstreamResponseEnd(attempt: 1, upstreamKeepAlive: true)
                == .endResponse(lastChunk: false, releaseUpstream: false, keepAlive: false))
        #expect(early.isClosed)
    }

    // MARK: the failure table

    struct FailureRow: CustomTestStringConvertible, Sendable {
        var failure: ExchangeFailure, status: Int, category: String, closes: Bool
        var testDescription: String { category }
    }

    @Test(arguments: [
        FailureRow(failure: .connectRefused, status: 502, category: "upstream_connect_failed", closes: false),
        FailureRow(failure: .connectTimeout, status: 504, category: "upstream_connect_timeout", closes: false),
        FailureRow(failure: .noEndpoint, status: 503, category: "no_upstream_endpoint", closes: false),
        FailureRow(failure: .maxConnections, status: 503, category: "upstream_max_connections", closes: false),
        FailureRow(failure: .upstreamReset, status: 502, category: "upstream_reset", closes: false),
        FailureRow(failure: .upstreamBadResponse, status: 502, category: "upstream_bad_response", closes: false),
        FailureRow(failure: .upstreamTimeout, status: 504, category: "upstream_timeout", closes: false),
        FailureRow(failure: .upstreamBodyTimeout, status: 504, category: "upstream_body_timeout", closes: false),
        FailureRow(failure: .clientBodyTimeout, status: 408, category: "client_body_timeout", closes: true),
        FailureRow(failure: .clientHeaderTimeout, status: 408, category: "client_header_timeout", closes: true),
        FailureRow(failure: .bodyRefused(status: 413), status: 413, category: "body_refused", closes: true),
        FailureRow(failure: .clientClosed, status: 499, category: "client_closed", closes: false),
        FailureRow(failure: .stageFailed, status: 500, category: "stage_failed", closes: false),
        FailureRow(failure: .malformed(status: 400), status: 400, category: "malformed_request", closes: true),
    ])
    func failureTable(_ row: FailureRow) {
        #expect(row.failure.status == row.status)
        #expect(row.failure.category == row.category)
        #expect(row.failure.closesConnection == row.closes)
    }

    @Test(arguments: [
        (M.ConnectFailure.refused, ExchangeFailure.connectRefused),
        (.timeout, .connectTimeout),
        (.noEndpoint, .noEndpoint),
        (.maxConnections, .maxConnections),
    ])
    func connectFailuresAreAnsweredLocally(_ reason: M.ConnectFailure, _ failure: ExchangeFailure) {
        var m = Self.connecting()
        #expect(m.connectFailed(attempt: 1, reason) == .respond(failure: failure, keepAlive: true))
        #expect(m.isIdle)
        // A late report for an attempt that is over changes nothing.
        #expect(m.connectFailed(attempt: 1, reason) == .none)
    }

    @Test func upstreamResetBeforeTheResponseIs502AfterItAnAbort() {
        var before = Self.awaiting()
        #expect(before.upstreamClosed(attempt: 1, receivedAny: false) == .respond(failure: .upstreamReset, keepAlive: true))
        var after = Self.streaming()
        #expect(after.upstreamClosed(attempt: 1, receivedAny: true) == .abort(.upstreamReset))
        #expect(after.isClosed)
        #expect(after.upstreamResponseBodyPart(attempt: 1, bytes: 3, now: Self.at(5)) == .none)
    }

    @Test func badResponseBeforeAndAfterTheHead() {
        var before = Self.awaiting()
        #expect(before.upstreamParseFailed(attempt: 1) == .respond(failure: .upstreamBadResponse, keepAlive: true))
        var after = Self.streaming(framing: .chunked)
        #expect(after.upstreamParseFailed(attempt: 1) == .abort(.upstreamBadResponse))
    }

    @Test func staleReusedConnectionIsRetriedOnceOnAFreshOne() {
        var m = Self.awaiting(reused: true)
        #expect(m.upstreamClosed(attempt: 1, receivedAny: false) == .retryFresh(attempt: 2))
        #expect(m.state == .connecting(attempt: 2))
        // Events of the first attempt are over.
        #expect(m.upstreamResponseHead(attempt: 1, status: 200, framing: .none, now: Self.at(3)) == .none)
        #expect(m.upstreamConnected(attempt: 2, reused: false, now: Self.at(3)) == .sendUpstreamHead(pendingBody: false, lastChunk: false))
        // The fresh connection failing too is the answer: no second retry.
        #expect(m.upstreamClosed(attempt: 2, receivedAny: false) == .respond(failure: .upstreamReset, keepAlive: true))
    }

    @Test func retryOnlyForAStaleReusedIdempotentBodilessRequest() {
        // A fresh connection that closes is a real failure.
        var fresh = Self.awaiting(reused: false)
        #expect(fresh.upstreamClosed(attempt: 1, receivedAny: false) == .respond(failure: .upstreamReset, keepAlive: true))
        // Bytes of a response had come: the upstream saw the request.
        var answered = Self.awaiting(reused: true)
        #expect(answered.upstreamClosed(attempt: 1, receivedAny: true) == .respond(failure: .upstreamReset, keepAlive: true))
        // Not idempotent.
        var post = Self.awaiting(Self.info(idempotent: false), reused: true)
        #expect(post.upstreamClosed(attempt: 1, receivedAny: false) == .respond(failure: .upstreamReset, keepAlive: true))
        // A body that may have gone.
        var withBody = Self.chain(Self.info(.contentLength(1)))
        _ = withBody.requestBodyPart(bytes: 1)
        _ = withBody.requestEnd(now: Self.t0)
        _ = withBody.flowStep(.proxy)
        _ = withBody.upstreamConnected(attempt: 1, reused: true, now: Self.at(1))
        #expect(withBody.upstreamClosed(attempt: 1, receivedAny: false) == .respond(failure: .upstreamReset, keepAlive: true))
    }

    /// TLS closed the connection with an alert (TLS 1.3: an upstream refusing the client's
    /// certificate after the client's side of the handshake): 502 upstream_tls_failed, unless a
    /// response had begun (then it is a reset, cut short).
    @Test func tlsAlertBeforeAnyResponseIsATLSFailure() {
        var fresh = Self.awaiting(reused: false)
        #expect(fresh.upstreamClosed(attempt: 1, receivedAny: false, tlsFailed: true) == .respond(failure: .upstreamTLSFailed, keepAlive: true))
        var answered = Self.awaiting(reused: false)
        #expect(answered.upstreamClosed(attempt: 1, receivedAny: true, tlsFailed: true) == .respond(failure: .upstreamReset, keepAlive: true))
        #expect(ExchangeFailure.upstreamTLSFailed.status == 502)
        #expect(ExchangeFailure.upstreamTLSFailed.category == "upstream_tls_failed")
        var connecting = Self.chain(Self.info())
        _ = connecting.flowStep(.proxy)
        #expect(connecting.connectFailed(attempt: 1, .tls) == .respond(failure: .upstreamTLSFailed, keepAlive: true))
    }

    /// A stage's request-body phase refused the body: its answer (the connection then closes,
    /// the rest of the body is unread) before the response started, an abort after; nothing
    /// once the exchange is over.
    @Test func bodyRefusedByAStage() {
        var inChain = Self.chain(Self.info(.chunked))
        #expect(inChain.requestBodyRefused(status: 413) == .respond(failure: .bodyRefused(status: 413), keepAlive: false))
        #expect(inChain.isClosed)
        var connecting = Self.connecting(Self.info(.chunked))
        #expect(connecting.requestBodyRefused(status: 400) == .respond(failure: .bodyRefused(status: 400), keepAlive: false))
        var streaming = Self.streaming(Self.info(.chunked))
        #expect(streaming.requestBodyRefused(status: 413) == .abort(.bodyRefused(status: 413)))
        #expect(streaming.requestBodyRefused(status: 413) == .none)
    }

    /// The machine has no body limit of its own (limits are stages' request-body phase): any
    /// size is dispatched, and body held while the chain runs stays held, with no upstream
    /// contacted, until the handler has run the phase over it.
    @Test func bodySizeIsTheStagesBusiness() {
        var big = Self.chain(Self.info(.contentLength(1 << 40)))
        #expect(big.flowStep(.proxy) == .dispatch(attempt: 1, sendContinue: false))
        var held = Self.chain(Self.info(.chunked))
        #expect(held.chainRunning)
        #expect(held.requestBodyPart(bytes: 1_500) == .bufferBody(pauseReads: false, bodyReady: false))
        #expect(held.flowStep(.suspend) == .none)
        #expect(held.chainRunning, "a suspended stage: the chain has not decided")
        #expect(held.requestBodyPart(bytes: 1_500) == .bufferBody(pauseReads: false, bodyReady: false))
        #expect(held.currentAttempt == nil, "no upstream attempt while the chain runs")
        // The phase refused the held body: the stage's answer, the connection closes, and a
        // verdict arriving afterwards changes nothing.
        #expect(held.requestBodyRefused(status: 413) == .respond(failure: .bodyRefused(status: 413), keepAlive: false))
        #expect(held.flowStep(.proxy) == .none)
        #expect(!held.chainRunning)
        var passed = Self.chain(Self.info(.chunked))
        _ = passed.requestBodyPart(bytes: 10)
        #expect(passed.flowStep(.proxy) == .dispatch(attempt: 1, sendContinue: false))
        #expect(!passed.chainRunning)
        #expect(passed.upstreamConnected(attempt: 1, reused: false, now: Self.at(1)) == .sendUpstreamHead(pendingBody: true, lastChunk: false))
        // Refused after the head went upstream but before the response started: still an answer.
        var awaiting = Self.awaiting(Self.info(.chunked))
        #expect(awaiting.requestBodyPart(bytes: 5) == .forwardBody(chunked: true))
        #expect(awaiting.requestBodyRefused(status: 413) == .respond(failure: .bodyRefused(status: 413), keepAlive: false))
        #expect(awaiting.isClosed)
    }

    @Test func malformedHeadAndBody() {
        var idle = M(now: Self.t0)
        #expect(idle.malformedRequest(status: 400)
                == .respond(failure: .malformed(status: 400), keepAlive: false))
        #expect(idle.isClosed)
        var body = Self.awaiting(Self.info(.chunked))
        #expect(body.malformedRequest(status: 400)
                == .respond(failure: .malformed(status: 400), keepAlive: false))
        var started = Self.streaming(Self.info(.chunked))
        #expect(started.malformedRequest(status: 400) == .abort(.malformed(status: 400)))
    }

    @Test func suspendedStageThenVerdicts() {
        var m = Self.chain()
        #expect(m.flowStep(.suspend) == .none)
        #expect(m.state == .chain)
        #expect(m.flowStep(.failed) == .respond(failure: .stageFailed, keepAlive: true))
        var ok = Self.chain()
        _ = ok.flowStep(.suspend)
        #expect(ok.flowStep(.proxy) == .dispatch(attempt: 1, sendContinue: false))
        // A verdict out of turn (the exchange is past the chain) is ignored.
        #expect(ok.flowStep(.respond) == .none)
    }

    // MARK: a stage that needs the body first

    @Test func bodyForAStageIsReadUpToItsAmountThenTheChainGoesOn() {
        // Enough arrives in pieces: ready at the piece that reaches the amount.
        var m = Self.chain(Self.info(.contentLength(100)))
        #expect(m.flowStep(.readBody(upTo: 16)) == .awaitBody(sendContinue: false))
        #expect(m.requestBodyPart(bytes: 10) == .bufferBody(pauseReads: false, bodyReady: false))
        #expect(m.requestBodyPart(bytes: 10) == .bufferBody(pauseReads: false, bodyReady: true))
        #expect(m.requestBodyPart(bytes: 10) == .bufferBody(pauseReads: false, bodyReady: false), "ready once")
        #expect(m.flowStep(.proxy) == .dispatch(attempt: 1, sendContinue: false))
        #expect(m.upstreamConnected(attempt: 1, reused: false, now: Self.at(1)) == .sendUpstreamHead(pendingBody: true, lastChunk: false))

        // The body ends short of the amount: ready at its end, with all of it.
        var short = Self.chain(Self.info(.chunked))
        #expect(short.flowStep(.readBody(upTo: 1000)) == .awaitBody(sendContinue: false))
        #expect(short.requestBodyPart(bytes: 10) == .bufferBody(pauseReads: false, bodyReady: false))
        #expect(short.requestEnd(now: Self.at(1)) == .bodyReady)

        // Already held (it came with the head, or while a stage was suspended): ready at once.
        var held = Self.chain(Self.info(.contentLength(100)))
        _ = held.flowStep(.suspend)
        _ = held.requestBodyPart(bytes: 50)
        #expect(held.flowStep(.readBody(upTo: 16)) == .bodyReady)
        var ended = Self.chain(Self.info(.contentLength(5)))
        _ = ended.requestBodyPart(bytes: 5)
        _ = ended.requestEnd(now: Self.at(1))
        #expect(ended.flowStep(.readBody(upTo: 16)) == .bodyReady)
    }

    @Test func bodyForAStageAnswers100ContinueOnceAndReadsPastTheUsualHold() {
        var m = Self.chain(Self.info(.contentLength(Int64(M.maxPendingBody) * 2), expect: true))
        #expect(m.flowStep(.readBody(upTo: M.maxPendingBody + 100)) == .awaitBody(sendContinue: true))
        // Past the usual hold, reading goes on while the stage waits for more...
        #expect(m.requestBodyPart(bytes: M.maxPendingBody + 50) == .bufferBody(pauseReads: false, bodyReady: false))
        // ...and pauses once it has its amount and more than the hold is held.
        #expect(m.requestBodyPart(bytes: 50) == .bufferBody(pauseReads: true, bodyReady: true))
        // The 100 went out already: the dispatch does not send a second one.
        #expect(m.flowStep(.proxy) == .dispatch(attempt: 1, sendContinue: false))

        // A stage answers after reading the body: a local answer, the connection kept only if
        // the body was read to its end.
        var answered = Self.chain(Self.info(.contentLength(20)))
        _ = answered.flowStep(.readBody(upTo: 16))
        _ = answered.requestBodyPart(bytes: 16)
        #expect(answered.flowStep(.respond) == .respond(failure: nil, keepAlive: false))
    }

    // MARK: the client going away, draining

    @Test func clientClosedIsLoggedAs499UnlessTheResponseStarted() {
        var idle = M(now: Self.t0)
        #expect(idle.clientClosed() == .none)
        var chain = Self.chain()
        #expect(chain.clientClosed() == .clientGone(status499: true))
        var connecting = Self.connecting()
        #expect(connecting.clientClosed() == .clientGone(status499: true))
        #expect(connecting.upstreamConnected(attempt: 1, reused: false, now: Self.at(1)) == .none)
        var awaiting = Self.awaiting()
        #expect(awaiting.clientClosed() == .clientGone(status499: true))
        var streaming = Self.streaming()
        #expect(streaming.clientClosed() == .clientGone(status499: false))
        #expect(streaming.isClosed)
        #expect(streaming.upstreamResponseEnd(attempt: 1, upstreamKeepAlive: true) == .none)
    }

    @Test func drainClosesIdleNowAndBusyAfterTheResponse() {
        var idle = M(now: Self.t0)
        #expect(idle.drain() == .close)
        #expect(idle.isClosed)
        var busy = Self.awaiting()
        #expect(busy.drain() == .none)
        #expect(busy.upstreamResponseHead(attempt: 1, status: 200, framing: .contentLength(1), now: Self.at(2))
                == .writeResponseHead(framing: .contentLength(1), keepAlive: false, noBody: false))
        #expect(busy.upstreamResponseEnd(attempt: 1, upstreamKeepAlive: true)
                == .endResponse(lastChunk: false, releaseUpstream: true, keepAlive: false))
        #expect(busy.isClosed)
    }

    // MARK: timeouts

    @Test func idleConnectionTimeouts() {
        var m = M(now: Self.t0)
        #expect(m.expiredTimeout(now: Self.at(59_000), partialHead: false, limits: Self.limits) == nil)
        #expect(m.expiredTimeout(now: Self.at(61_000), partialHead: false, limits: Self.limits) == .keepAliveIdle)
        #expect(m.timedOut(.keepAliveIdle) == .close)
        #expect(m.expiredTimeout(now: Self.at(99_000), partialHead: false, limits: Self.limits) == nil)

        var partial = M(now: Self.t0)
        partial.clientBytesArrived(now: Self.at(100))
        #expect(partial.expiredTimeout(now: Self.at(10_000), partialHead: true, limits: Self.limits) == nil)
        #expect(partial.expiredTimeout(now: Self.at(10_200), partialHead: true, limits: Self.limits) == .clientHeader)
        #expect(partial.timedOut(.clientHeader) == .respond(failure: .clientHeaderTimeout, keepAlive: false))
        #expect(partial.isClosed)
    }

    @Test func clientBodyIdleIs408OrAnAbort() {
        var m = Self.connecting(Self.info(.contentLength(10)))
        #expect(m.expiredTimeout(now: Self.at(29_000), partialHead: false, limits: Self.limits) == nil)
        #expect(m.expiredTimeout(now: Self.at(31_000), partialHead: false, limits: Self.limits) == .clientBodyIdle)
        m.clientBytesArrived(now: Self.at(30_000))
        #expect(m.expiredTimeout(now: Self.at(31_000), partialHead: false, limits: Self.limits) == nil)
        #expect(m.timedOut(.clientBodyIdle) == .respond(failure: .clientBodyTimeout, keepAlive: false))
        var started = Self.connecting(Self.info(.contentLength(10)))
        _ = started.upstreamConnected(attempt: 1, reused: false, now: Self.at(1))
        _ = started.upstreamResponseHead(attempt: 1, status: 200, framing: .contentLength(1), now: Self.at(2))
        #expect(started.timedOut(.clientBodyIdle) == .abort(.clientBodyTimeout))
        // A request whose body is in has no body to wait for.
        var ended = Self.awaiting()
        #expect(ended.timedOut(.clientBodyIdle) == .none)
    }

    @Test func responseHeadTimeoutCountsFromTheWholeRequestSent() {
        var m = Self.connecting(Self.info(.contentLength(1)))
        _ = m.upstreamConnected(attempt: 1, reused: false, now: Self.at(1))
        // A long upload: no response-head deadline while the body is still going up.
        m.clientBytesArrived(now: Self.at(20_000))
        #expect(m.expiredTimeout(now: Self.at(20_000), partialHead: false, limits: Self.limits) == nil)
        _ = m.requestBodyPart(bytes: 1)
        _ = m.requestEnd(now: Self.at(20_000))
        #expect(m.expiredTimeout(now: Self.at(24_000), partialHead: false, limits: Self.limits) == nil)
        #expect(m.expiredTimeout(now: Self.at(25_100), partialHead: false, limits: Self.limits) == .upstreamResponseHead)
        #expect(m.timedOut(.upstreamResponseHead) == .respond(failure: .upstreamTimeout, keepAlive: true))
    }

    @Test func upstreamBodyIdleAborts() {
        var m = Self.streaming()
        #expect(m.expiredTimeout(now: Self.at(6_000), partialHead: false, limits: Self.limits) == nil)
        _ = m.upstreamResponseBodyPart(attempt: 1, bytes: 1, now: Self.at(6_000))
        #expect(m.expiredTimeout(now: Self.at(12_000), partialHead: false, limits: Self.limits) == nil)
        #expect(m.expiredTimeout(now: Self.at(13_100), partialHead: false, limits: Self.limits) == .upstreamBodyIdle)
        #expect(m.timedOut(.upstreamBodyIdle) == .abort(.upstreamBodyTimeout))
        #expect(m.expiredTimeout(now: Self.at(99_000), partialHead: false, limits: Self.limits) == nil)
    }

    @Test func timeoutsOutOfTheirStateDoNothing() {
        var awaiting = Self.awaiting()
        #expect(awaiting.timedOut(.upstreamBodyIdle) == .none)
        #expect(awaiting.timedOut(.keepAliveIdle) == .none)
        #expect(awaiting.timedOut(.clientHeader) == .none)
        var streaming = Self.streaming()
        #expect(streaming.timedOut(.upstreamResponseHead) == .none)
    }
}
