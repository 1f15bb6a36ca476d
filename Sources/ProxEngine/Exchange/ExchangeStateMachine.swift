import NIOCore
import ProxCore

/// Why an exchange failed: the failure table. Each case's status and category are decided here
/// and nowhere else; whether the client gets that status as a local answer or sees its
/// connection cut depends only on whether the response had started
/// (`ExchangeStateMachine.fail`).
enum ExchangeFailure: Equatable, Sendable {
    /// The upstream refused the connection (or the address did not resolve).
    case connectRefused
    /// No connection within the pool's `connect_timeout` (the TLS handshake included).
    case connectTimeout
    /// The TLS handshake with the upstream failed: its certificate not verified (CA, name,
    /// dates), or the handshake refused (a client certificate it wants, no common version).
    case upstreamTLSFailed
    /// The balancer found no eligible endpoint.
    case noEndpoint
    /// The endpoint's per-loop share of `max_connections_per_endpoint` is in use.
    case maxConnections
    /// The upstream closed the connection before the response ended.
    case upstreamReset
    /// The upstream's response did not parse.
    case upstreamBadResponse
    /// No response head within the pool's `response_header_timeout`.
    case upstreamTimeout
    /// The response body stalled beyond the pool's `body_idle_timeout` (always after the head:
    /// an abort).
    case upstreamBodyTimeout
    /// The client stopped sending its body.
    case clientBodyTimeout
    /// The request head did not arrive in time.
    case clientHeaderTimeout
    /// The client went away: logged as 499, nothing sent.
    case clientClosed
    /// A suspended stage failed.
    case stageFailed
    /// A stage's request-body phase refused the body with this status (its own response, which
    /// the handler holds, is what the client gets: `body_limit`'s 413 `body_too_large`, ...).
    case bodyRefused(status: Int)
    /// The request did not parse; the parser chose the status (and the precise category, which
    /// the handler has at hand: `malformed_request` stands for it here). No payload that needs
    /// reference counting, so actions stay trivial values.
    case malformed(status: Int)
    /// `server.drain_timeout` ran out with the request still in flight: Prox cut it, not the
    /// upstream or the client.
    case drainTimeout

    var status: Int {
        switch self {
        case .connectRefused, .upstreamTLSFailed, .upstreamReset, .upstreamBadResponse: return 502
        case .connectTimeout, .upstreamTimeout, .upstreamBodyTimeout: return 504
        case .noEndpoint, .maxConnections, .drainTimeout: return 503
        case .clientBodyTimeout, .clientHeaderTimeout: return 408
        case .clientClosed: return 499
        case .stageFailed: return 500
        case .malformed(let status): return status
        case .bodyRefused(let status): return status
        }
    }

    var category: String {
        switch self {
        case .connectRefused: return "upstream_connect_failed"
        case .connectTimeout: return "upstream_connect_timeout"
        case .upstreamTLSFailed: return "upstream_tls_failed"
        case .noEndpoint: return "no_upstream_endpoint"
        case .maxConnections: return "upstream_max_connections"
        case .upstreamReset: return "upstream_reset"
        case .upstreamBadResponse: return "upstream_bad_response"
        case .upstreamTimeout: return "upstream_timeout"
        case .upstreamBodyTimeout: return "upstream_body_timeout"
        case .clientBodyTimeout: return "client_body_timeout"
        case .clientHeaderTimeout: return "client_header_timeout"
        case .clientClosed: return "client_closed"
        case .stageFailed: return "stage_failed"
        case .malformed: return "malformed_request"
        case .bodyRefused: return "body_refused"
        case .drainTimeout: return "drain_timeout"
        }
    }

    /// The client's side of the connection is in an unknown state (unread or bad bytes): the
    /// answer closes the connection whatever the request asked.
    var closesConnection: Bool {
        switch self {
        case .clientBodyTimeout, .clientHeaderTimeout, .malformed, .bodyRefused, .drainTimeout: return true
        default: return false
        }
    }
}

/// The per-request lifecycle of an HTTP/1 client connection, as a value. Events go in, one
/// `Action` comes out for the handler to carry out; the machine does no I/O, holds no channel
/// and reads no clock (times come with the events), so every transition is testable without
/// sockets. See docs/ARCHITECTURE.md, "The exchange state machine".
///
/// The decisions that live here and only here: keep-alive, the failure table
/// (`ExchangeFailure`), answer-locally versus abort, the one retry of a stale pooled connection,
/// and which timeout applies in which state. (Body limits are stages' request-body phase: a
/// refusal comes in as `requestBodyRefused`.)
///
/// One request at a time: the machine goes back to `.idle` after a kept-alive response and a
/// pipelined request starts a new lifecycle. Upstream events carry the attempt number they
/// belong to; an event of an attempt that is no longer current is ignored.
struct ExchangeStateMachine {
    enum State: Equatable {
        /// No request in flight: waiting for (the rest of) a head on a kept-alive connection.
        case idle
        /// The head arrived; routing and the chain run (or a stage is suspended).
        case chain
        /// Waiting for an upstream connection for `attempt`.
        case connecting(attempt: Int)
        /// The request head went upstream on `attempt`; waiting for the response head.
        case awaitingResponse(attempt: Int)
        /// The response head went to the client; its body streams from `attempt`.
        case streamingResponse(attempt: Int)
        /// The upstream of `attempt` answered the upgrade with `101`: the two connections are a
        /// byte tunnel (`ByteRelay`), no HTTP is framed on either, and the connection ends with
        /// the tunnel. Nothing but `tunnelEnded` changes this state.
        case tunnel(attempt: Int)
        /// The connection is closing (or closed): every later event is ignored.
        case closed
    }

    /// What the handler does next. A single enum with small payloads: returned by value, no
    /// allocation per event.
    enum Action: Equatable {
        case none
        /// Answer locally: with the chain's response (`failure == nil`) or the error answer of
        /// `failure`. Any upstream connection is closed first (never reused). After the write,
        /// keep the connection for the next request (`keepAlive`) or flush and close it. A
        /// failure with a 5xx status is logged.
        case respond(failure: ExchangeFailure?, keepAlive: Bool)
        /// The response had started and cannot be completed: log `failure`, send what is held,
        /// close any upstream connection and close the client connection now, so the client sees
        /// a cut response, never a short one taken for whole.
        case abort(ExchangeFailure)
        /// The chain chose a pool: answer `100 Continue` first when `sendContinue`, prepare the
        /// upstream head and dispatch attempt `attempt` (pick an endpoint, reuse or connect).
        case dispatch(attempt: Int, sendContinue: Bool)
        /// The stale pooled connection of the previous attempt closed before answering: connect
        /// afresh to the same endpoint for `attempt`.
        case retryFresh(attempt: Int)
        /// Attempt connected: write the upstream head, then the body held so far
        /// (`pendingBody`), then the last chunk (`lastChunk`, the request already ended). With
        /// neither, the head goes with one write-and-flush.
        case sendUpstreamHead(pendingBody: Bool, lastChunk: Bool)
        /// Hold this body piece until the upstream connection is made; pause reading the client
        /// when `pauseReads` (too much held). `bodyReady`: the body a stage waits for is now
        /// held (as much as it asked, or all of it): give it to the chain and go on.
        case bufferBody(pauseReads: Bool, bodyReady: Bool)
        /// A stage needs the request body before it runs: read it, holding the pieces; answer
        /// `100 Continue` first when `sendContinue` (the client waits for it).
        case awaitBody(sendContinue: Bool)
        /// The body a stage waits for is held already (or just ended): give it to the chain.
        case bodyReady
        /// Forward this body piece upstream, chunk-framed when `chunked`.
        case forwardBody(chunked: Bool)
        /// The request body ended while attached: write the last chunk upstream (`lastChunk`).
        case endUpstreamBody(lastChunk: Bool)
        /// Write the (response-stage-edited) head to the client with this framing and
        /// keep-alive. `noBody`: HEAD, 204 or 304, the head is all there is.
        case writeResponseHead(framing: BodyFraming, keepAlive: Bool, noBody: Bool)
        /// Write this response body piece to the client, chunk-framed when `chunked`.
        case writeResponseBody(chunked: Bool)
        /// The response ended: write the last chunk (`lastChunk`), flush, release the upstream
        /// connection to the pool (`releaseUpstream`) or close it, then keep the client
        /// connection (`keepAlive`) or close it after the write.
        case endResponse(lastChunk: Bool, releaseUpstream: Bool, keepAlive: Bool)
        /// The client went away mid-exchange: close any upstream connection and log the
        /// request (status 499 when `status499`, the response had not started).
        case clientGone(status499: Bool)
        /// Close the client connection now (keep-alive idle, draining while idle).
        case close
        /// The upstream answered the forwarded upgrade with `101`: write its head to the client
        /// (with `Connection: upgrade`, `Upgrade: websocket`), take the upstream connection out
        /// of the pool for good, and join the two connections with a byte relay, handing it the
        /// bytes either side sent past its head. Neither parser runs again.
        case startTunnel
        /// The tunnel closed (both connections): log the exchange (status 101, the bytes each
        /// way) and let it go. The client connection is already closed.
        case finishTunnel
    }

    /// How the chain finished, as far as the machine cares.
    enum FlowOutcome: Equatable {
        /// The chain (or the route) answers; the handler holds the response.
        case respond
        /// Proxy (the body held so far has been through the request-body phase).
        case proxy
        /// Proxy a WebSocket handshake the route lets through: the upstream head carries
        /// `Connection: upgrade` and `Upgrade: websocket`, and a `101` answer starts a tunnel.
        case proxyUpgrade
        /// A stage suspended; another outcome follows.
        case suspend
        /// A stage needs up to this many bytes of the request body first.
        case readBody(upTo: Int)
        /// A suspended stage failed.
        case failed
    }

    enum ConnectFailure: Equatable {
        case refused, timeout, noEndpoint, maxConnections, tls

        var failure: ExchangeFailure {
            switch self {
            case .refused: return .connectRefused
            case .timeout: return .connectTimeout
            case .noEndpoint: return .noEndpoint
            case .maxConnections: return .maxConnections
            case .tls: return .upstreamTLSFailed
            }
        }
    }

    enum Timeout: Equatable {
        case clientHeader, clientBodyIdle, upstreamResponseHead, upstreamBodyIdle, keepAliveIdle
    }

    /// The deadlines in force, in milliseconds (the listener's and the pool's).
    struct TimeoutLimits {
        var clientHeader: Int64
        var clientBodyIdle: Int64
        var keepAliveIdle: Int64
        var responseHead: Int64
        var upstreamBodyIdle: Int64
    }

    /// What the machine needs from a request head, read once.
    struct RequestInfo: Equatable {
        var framing: BodyFraming
        var keepAlive: Bool
        var versionMinor: UInt8
        var isHead: Bool
        var idempotent: Bool
        var expectContinue: Bool
        /// A WebSocket handshake (`RequestHead.upgradeWebSocket`): read here, from the head at
        /// hand, because reading it later through the context copies the whole head.
        var upgradeRequested = false
    }

    /// Bytes of body held while the upstream connection is made; beyond this, reading pauses.
    static let maxPendingBody = 256 * 1024
    /// Attempts per request: the first and one retry of a stale pooled connection.
    static let maxAttempts = 2

    private(set) var state: State = .idle
    // The current request.
    private(set) var request = RequestInfo(framing: .none, keepAlive: true, versionMinor: 1, isHead: false,
                                           idempotent: true, expectContinue: false)
    private(set) var requestEnded = true
    private(set) var bodyBytes: Int64 = 0
    private var pendingBodyBytes = 0
    /// Bytes of body a stage waits for (0: none waits).
    private var bodyWanted = 0
    private var continueSent = false
    private var attemptReused = false
    private var clientChunked = false
    private var responseKeepAlive = false
    /// The request went upstream as an upgrade (`proxyUpgrade`): a `101` is its answer.
    private(set) var upgradeOffered = false
    /// Set by draining or by an answer that closes: no request after the current one.
    private(set) var closeAfterResponse = false
    // Times (set from the events' `now`).
    private(set) var idleSince: NIODeadline
    private var headStartedAt: NIODeadline?
    private var lastClientActivity: NIODeadline
    private var lastUpstreamActivity: NIODeadline
    private(set) var requestSentAt: NIODeadline?

    init(now: NIODeadline) {
        idleSince = now
        lastClientActivity = now
        lastUpstreamActivity = now
    }

    /// The exchange's response has been written out (answered, ended, aborted or abandoned):
    /// the keep-alive idle clock starts.
    @inline(__always)
    mutating func exchangeFinished(now: NIODeadline) {
        idleSince = now
    }

    @inline(__always) var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }
    /// The request body goes upstream chunk-framed.
    var upstreamChunked: Bool { request.framing == .chunked }
    @inline(__always) var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }
    /// The chain is still deciding (running, or a stage is suspended): no upstream is contacted
    /// yet, and body that arrives is held for the request-body phase to see once it has decided.
    @inline(__always) var chainRunning: Bool {
        if case .chain = state { return true }
        return false
    }
    /// The body of the current request has been read (the next pipelined request may be framed).
    @inline(__always) var isRequestBodyDone: Bool { requestEnded && !isIdle }
    var responseStarted: Bool {
        switch state {
        case .streamingResponse, .tunnel: return true
        default: return false
        }
    }
    @inline(__always) var isTunnel: Bool {
        if case .tunnel = state { return true }
        return false
    }
    /// The current upstream attempt, if one is in flight.
    var currentAttempt: Int? {
        switch state {
        case .connecting(let a), .awaitingResponse(let a), .streamingResponse(let a): return a
        default: return nil  // a tunnel's upstream is its relay's: no upstream event applies
        }
    }

    // MARK: keep-alive and failures: the one place each

    /// Whether the connection stays open after the current response.
    @inline(__always)
    private func keepAlive(force close: Bool) -> Bool {
        !close && request.keepAlive && requestEnded && !closeAfterResponse
    }

    /// The response is complete (or answered): back to idle for the next request, or closing.
    @inline(__always)
    private mutating func finish(keepAlive: Bool) {
        if keepAlive {
            state = .idle
        } else {
            state = .closed
            closeAfterResponse = true
        }
    }

    /// Answer locally, or abort when the response has started: decided here only.
    private mutating func fail(_ f: ExchangeFailure) -> Action {
        switch state {
        case .closed, .tunnel:
            // A tunnel's failures are its relay's: it closes both connections.
            return .none
        case .streamingResponse:
            state = .closed
            closeAfterResponse = true
            return .abort(f)
        case .idle, .chain, .connecting, .awaitingResponse:
            // From idle (a bad or late head) there is no request: nothing of a body was read.
            if isIdle { bodyBytes = 0 }
            let keep = keepAlive(force: f.closesConnection)
            finish(keepAlive: keep)
            return .respond(failure: f, keepAlive: keep)
        }
    }

    // MARK: client events

    /// Bytes arrived from the client.
    @inline(__always)
    mutating func clientBytesArrived(now: NIODeadline) {
        if isIdle {
            if headStartedAt == nil { headStartedAt = now }
        } else {
            lastClientActivity = now
        }
    }

    /// A request head was framed. Starts a new lifecycle (from `.idle`).
    @inline(__always)
    mutating func requestHead(_ info: RequestInfo, draining: Bool, now: NIODeadline) {
        guard isIdle else { return }
        state = .chain
        request = info
        requestEnded = info.framing == .none
        bodyBytes = 0
        pendingBodyBytes = 0
        bodyWanted = 0
        continueSent = false
        upgradeOffered = false
        headStartedAt = nil
        lastClientActivity = now
        // attemptReused, requestSentAt, lastUpstreamActivity, clientChunked and responseKeepAlive
        // are set by the upstream events before anything reads them.
        if draining { closeAfterResponse = true }
    }

    /// A stage's request-body phase refused the body (status from its response). The body's
    /// rest is unread, so the answer closes the connection; after the response started, abort.
    mutating func requestBodyRefused(status: Int) -> Action {
        switch state {
        case .idle, .closed: return .none
        default: return fail(.bodyRefused(status: status))
        }
    }

    /// A piece of the request body (`bytes` long) was framed.
    @inline(__always)
    mutating func requestBodyPart(bytes: Int) -> Action {
        switch state {
        case .idle, .closed, .tunnel: return .none
        default: break
        }
        bodyBytes += Int64(bytes)
        switch state {
        case .chain, .connecting:
            pendingBodyBytes += bytes
            var ready = false
            if bodyWanted > 0 && pendingBodyBytes >= bodyWanted {
                bodyWanted = 0
                ready = true
            }
            // While a stage waits for more body than the usual hold, reading goes on up to its amount.
            return .bufferBody(pauseReads: bodyWanted == 0 && pendingBodyBytes > Self.maxPendingBody, bodyReady: ready)
        case .awaitingResponse, .streamingResponse:
            return bytes > 0 ? .forwardBody(chunked: request.framing == .chunked) : .none
        case .idle, .closed, .tunnel:
            return .none
        }
    }

    /// The request's end was framed (a request without a body has ended with its head: nothing
    /// to do, and `now` is not read).
    @inline(__always)
    mutating func requestEnd(now: @autoclosure () -> NIODeadline) -> Action {
        guard !requestEnded else { return .none }
        requestEnded = true
        switch state {
        case .awaitingResponse, .streamingResponse:
            requestSentAt = now()
            return .endUpstreamBody(lastChunk: request.framing == .chunked)
        case .chain where bodyWanted > 0:
            // The body ended short of what the stage asked for: it gets all of it.
            bodyWanted = 0
            return .bodyReady
        default:
            return .none
        }
    }

    /// The request did not parse (head or body). With no request in flight the handler makes a
    /// bare exchange to answer on.
    mutating func malformedRequest(status: Int) -> Action {
        fail(.malformed(status: status))
    }

    /// The chain finished (or suspended, or a suspended stage failed).
    @inline(__always)
    mutating func flowStep(_ outcome: FlowOutcome) -> Action {
        guard case .chain = state else { return .none }
        switch outcome {
        case .suspend:
            return .none
        case .readBody(let n):
            if requestEnded || pendingBodyBytes >= n { return .bodyReady }
            bodyWanted = n
            let sendContinue = request.expectContinue && !continueSent
            continueSent = continueSent || sendContinue
            return .awaitBody(sendContinue: sendContinue)
        case .failed:
            return fail(.stageFailed)
        case .respond:
            let keep = keepAlive(force: false)
            finish(keepAlive: keep)
            return .respond(failure: nil, keepAlive: keep)
        case .proxy:
            state = .connecting(attempt: 1)
            return .dispatch(attempt: 1, sendContinue: request.expectContinue && !requestEnded && !continueSent)
        case .proxyUpgrade:
            // The framer only flags a handshake without a body: nothing to continue.
            upgradeOffered = true
            state = .connecting(attempt: 1)
            return .dispatch(attempt: 1, sendContinue: false)
        }
    }

    /// The client connection closed (or the handler was removed).
    mutating func clientClosed() -> Action {
        // A tunnel's client connection is its relay's: the relay's end comes as `tunnelEnded`.
        if isTunnel { return .none }
        let prior = state
        state = .closed
        closeAfterResponse = true
        switch prior {
        case .idle, .closed, .tunnel: return .none
        case .streamingResponse: return .clientGone(status499: false)
        case .chain, .connecting, .awaitingResponse: return .clientGone(status499: true)
        }
    }

    /// Draining: an idle connection closes now, a busy one after its response.
    mutating func drain() -> Action {
        closeAfterResponse = true
        guard isIdle else { return .none }
        state = .closed
        return .close
    }

    /// The drain's time ran out: an idle connection closes; a request in flight is answered
    /// 503 `drain_timeout` (or cut, if its response had started), and the connection closes.
    mutating func drainTimedOut() -> Action {
        closeAfterResponse = true
        guard !isIdle else {
            state = .closed
            return .close
        }
        return fail(.drainTimeout)
    }

    // MARK: upstream events

    /// An upstream connection for `attempt` is ready (`reused`: taken from the idle pool).
    @inline(__always)
    mutating func upstreamConnected(attempt: Int, reused: Bool, now: NIODeadline) -> Action {
        guard case .connecting(let a) = state, a == attempt else { return .none }
        state = .awaitingResponse(attempt: attempt)
        attemptReused = reused
        lastUpstreamActivity = now
        requestSentAt = requestEnded ? now : nil
        let pending = pendingBodyBytes > 0
        pendingBodyBytes = 0
        return .sendUpstreamHead(pendingBody: pending, lastChunk: requestEnded && request.framing == .chunked)
    }

    /// No connection for `attempt`.
    mutating func connectFailed(attempt: Int, _ reason: ConnectFailure) -> Action {
        guard case .connecting(let a) = state, a == attempt else { return .none }
        return fail(reason.failure)
    }

    /// The response head of `attempt` arrived (after the response stages ran on it).
    @inline(__always)
    mutating func upstreamResponseHead(attempt: Int, status: Int, framing: BodyFraming, now: NIODeadline) -> Action {
        guard case .awaitingResponse(let a) = state, a == attempt else { return .none }
        lastUpstreamActivity = now
        if status == 101 {
            // A 101 answers an upgrade that went upstream, nothing else (the response framer
            // refuses one too; the machine does not rely on it).
            guard upgradeOffered else { return fail(.upstreamBadResponse) }
            state = .tunnel(attempt: attempt)
            closeAfterResponse = true
            return .startTunnel
        }
        var framing = framing
        let noBody = request.isHead || status == 204 || status == 304
        var keep = keepAlive(force: false)
        switch framing {
        case .untilClose:
            // An HTTP/1.1 client reads it chunked; an HTTP/1.0 one until the close.
            if request.versionMinor >= 1 { framing = .chunked } else { keep = false }
        case .chunked where request.versionMinor == 0:
            // An HTTP/1.0 client cannot read chunked: the body ends when the connection closes.
            framing = .untilClose
            keep = false
        default: break
        }
        if noBody { framing = .none }
        clientChunked = !noBody && framing == .chunked
        responseKeepAlive = keep
        state = .streamingResponse(attempt: attempt)
        return .writeResponseHead(framing: framing, keepAlive: keep, noBody: noBody)
    }

    /// A response body piece of `attempt` arrived.
    @inline(__always)
    mutating func upstreamResponseBodyPart(attempt: Int, bytes: Int, now: NIODeadline) -> Action {
        guard case .streamingResponse(let a) = state, a == attempt, bytes > 0 else { return .none }
        lastUpstreamActivity = now
        // An empty piece would become the last-chunk marker if re-chunked (guarded above).
        return .writeResponseBody(chunked: clientChunked)
    }

    /// The response of `attempt` ended; `upstreamKeepAlive`: the upstream keeps the connection.
    @inline(__always)
    mutating func upstreamResponseEnd(attempt: Int, upstreamKeepAlive: Bool) -> Action {
        guard case .streamingResponse(let a) = state, a == attempt else { return .none }
        let keep = responseKeepAlive
        let release = requestEnded && upstreamKeepAlive
        finish(keepAlive: keep)
        return .endResponse(lastChunk: clientChunked, releaseUpstream: release, keepAlive: keep)
    }

    /// The connection of `attempt` closed before the response ended. `receivedAny`: a byte of a
    /// response had arrived.
    /// `tlsFailed`: TLS ended the connection with an error (with TLS 1.3 an upstream that wants a
    /// client certificate refuses it after the client's side of the handshake completed, so the
    /// refusal arrives as the request goes out): the failure is `upstreamTLSFailed`, not a reset.
    mutating func upstreamClosed(attempt: Int, receivedAny: Bool, tlsFailed: Bool = false) -> Action {
        guard let current = currentAttempt, current == attempt else { return .none }
        if case .awaitingResponse = state, attemptReused, !receivedAny, request.idempotent,
           request.framing == .none, attempt < Self.maxAttempts {
            // A stale pooled connection: once more, on a fresh connection to the same endpoint.
            state = .connecting(attempt: attempt + 1)
            return .retryFresh(attempt: attempt + 1)
        }
        return fail(tlsFailed && !receivedAny ? .upstreamTLSFailed : .upstreamReset)
    }

    /// The tunnel that a `101` started has ended (both connections closed).
    mutating func tunnelEnded() -> Action {
        guard isTunnel else { return .none }
        state = .closed
        return .finishTunnel
    }

    /// The response of `attempt` did not parse.
    mutating func upstreamParseFailed(attempt: Int) -> Action {
        guard let current = currentAttempt, current == attempt else { return .none }
        return fail(.upstreamBadResponse)
    }

    // MARK: timeouts

    /// The timeout that has expired at `now` in the current state, if any. `partialHead`: part
    /// of a request head is buffered.
    func expiredTimeout(now: NIODeadline, partialHead: Bool, limits: TimeoutLimits) -> Timeout? {
        switch state {
        case .closed, .tunnel:
            // A tunnel's idle timeout is its relay's.
            return nil
        case .idle:
            if partialHead, let started = headStartedAt {
                return now - started > .milliseconds(limits.clientHeader) ? .clientHeader : nil
            }
            return now - idleSince > .milliseconds(limits.keepAliveIdle) ? .keepAliveIdle : nil
        case .chain, .connecting, .awaitingResponse, .streamingResponse:
            if !requestEnded && now - lastClientActivity > .milliseconds(limits.clientBodyIdle) { return .clientBodyIdle }
            if case .awaitingResponse = state, let sent = requestSentAt, now - sent > .milliseconds(limits.responseHead) {
                return .upstreamResponseHead
            }
            if case .streamingResponse = state, now - lastUpstreamActivity > .milliseconds(limits.upstreamBodyIdle) {
                return .upstreamBodyIdle
            }
            return nil
        }
    }

    /// A timeout fired.
    mutating func timedOut(_ t: Timeout) -> Action {
        switch t {
        case .keepAliveIdle:
            guard isIdle else { return .none }
            state = .closed
            closeAfterResponse = true
            return .close
        case .clientHeader:
            guard isIdle else { return .none }
            return fail(.clientHeaderTimeout)
        case .clientBodyIdle:
            guard !requestEnded else { return .none }
            return fail(.clientBodyTimeout)
        case .upstreamResponseHead:
            guard case .awaitingResponse = state else { return .none }
            return fail(.upstreamTimeout)
        case .upstreamBodyIdle:
            guard case .streamingResponse = state else { return .none }
            return fail(.upstreamBodyTimeout)
        }
    }
}
