import NIOCore

/// Everything about one request in flight. Created by the engine when a head arrives, with
/// the snapshot read once for this request; used on the request's event loop only. On a
/// keep-alive connection the engine may clear a finished context (`reset`) and give it the
/// connection's next request (`begin`), when nothing but the engine holds it.
///
/// Stages read all of it; they may edit `head` and `requestID`. What the engine keeps here
/// (route, captures, pool, endpoint, stages run, trace, the dry-run draw) is set only inside
/// this package (`package(set)`), so a custom filter cannot reach into engine bookkeeping.
public final class RequestContext {
    public var head: RequestHead
    /// The snapshot this request runs against, to its end, even across a reload.
    public package(set) var snapshot: Snapshot
    public package(set) var listener: ListenerSpec
    public let client: IPAddress
    public let clientPort: Int
    /// "http" or "https".
    public let scheme: String
    /// The client certificate the connection's TLS handshake verified (mTLS), read once per
    /// connection; nil on cleartext, or when the client sent none.
    public let tlsClient: TLSClientIdentity?
    public package(set) var route: Route?
    /// The request's id: set by the `request_id` filter (or made by the engine for an error
    /// response); empty until then. A generated id is kept as its hex digits
    /// (`generatedRequestID`) and made a `String` only when read here: the hot path writes it
    /// into header lines with `writeRequestID`.
    public var requestID: String {
        get {
            if requestIDText.isEmpty, let g = requestIDBits { requestIDText = g.text }
            return requestIDText
        }
        set {
            requestIDText = newValue
            requestIDBits = nil
        }
    }
    /// The id as text: a client's kept id, or a generated one once read as a `String`.
    @usableFromInline var requestIDText = ""
    /// The id as generated, or nil (none yet, or one given as text).
    public var generatedRequestID: RequestID.Generated? {
        get { requestIDBits }
        set {
            requestIDBits = newValue
            requestIDText = ""
        }
    }
    @usableFromInline var requestIDBits: RequestID.Generated?
    /// True once the request has an id.
    @inlinable public var hasRequestID: Bool { requestIDBits != nil || !requestIDText.isEmpty }
    /// Writes the id as the value of a `name` line in `fields`, replacing any (`set`) or not
    /// (`add`). A generated id's digits are copied without the check for CR and LF that other
    /// values get.
    @inlinable
    public func writeRequestID(_ name: HeaderName, into fields: inout HeaderFields, replacing: Bool) {
        if requestIDText.isEmpty, let g = requestIDBits {
            g.withDigits { d in
                if replacing { fields.set(name, cleanBytes: d) } else { fields.add(name, cleanBytes: d) }
            }
        } else if replacing {
            fields.set(name, requestIDText)
        } else {
            fields.add(name, requestIDText)
        }
    }

    /// Lends the id's bytes (empty without one).
    @inlinable
    public func withRequestIDBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        if requestIDText.isEmpty, let g = requestIDBits { return g.withDigits(body) }
        if let r = requestIDText.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return r }
        return Array(requestIDText.utf8).withUnsafeBytes(body)
    }
    /// Captures of the chosen route's path regex and host regex, when templates use them.
    public package(set) var pathCaptures: [String?] = []
    public package(set) var hostCaptures: [String?] = []
    /// Request body bytes given to the request-body phase so far, the piece being looked at
    /// included (`RouteChain.runRequestBody` keeps it). A body-phase stage that limits or meters
    /// the body reads this rather than counting in a slot of its own: one count per request,
    /// however many stages read it.
    public var requestBodyBytes: Int64 { bodyBytesSeen }
    @usableFromInline package var bodyBytesSeen: Int64 = 0
    /// Set when tracing (dry-run, check); nil on the hot path.
    public package(set) var trace: Trace?
    /// The loop the request runs on; nil in dry-run.
    public let eventLoop: (any EventLoop)?
    /// Filled by the engine (or the dry-run stub) when it picks an upstream.
    public package(set) var poolID: String?
    public package(set) var endpoint: String?
    /// A fixed random draw for the route's random decisions (the traffic split), in place of the
    /// event loop's generator: set by `prox dry-run --random` so its choice is reproducible.
    /// nil on the hot path. The draw is read as the fraction `value / 2^64` of the range.
    public package(set) var randomOverride: UInt64?
    /// The start of the request body (up to the largest `requestBodyBuffer` a stage of the
    /// route asked for), read before that stage ran; nil when no stage asked.
    public package(set) var requestBody: ByteBuffer?
    /// Whether `requestBody` is the whole body (false: the body goes on past it).
    public package(set) var requestBodyComplete = false
    /// True in `prox dry-run` and `prox check`: a stage must not reach outside the process (an
    /// external call) and should say in the trace what it would do instead.
    public package(set) var dryRun = false
    /// How many chain stages have run (their response sides run in reverse on the way back).
    public package(set) var stagesRun: Int = 0
    /// `client` as text, made once per connection by the engine.
    public let clientIPText: String

    public init(head: consuming RequestHead, snapshot: Snapshot, listener: ListenerSpec, client: IPAddress, clientPort: Int,
                clientIPText: String? = nil, scheme: String = "http", tlsClient: TLSClientIdentity? = nil,
                eventLoop: (any EventLoop)?, trace: Trace? = nil) {
        self.head = head
        self.snapshot = snapshot
        self.listener = listener
        self.client = client
        self.clientPort = clientPort
        self.clientIPText = clientIPText ?? client.description
        self.scheme = scheme
        self.tlsClient = tlsClient
        self.eventLoop = eventLoop
        self.trace = trace
    }

    public var isTracing: Bool { trace != nil }

    /// Clears this context, its request finished, for the next request on the same connection:
    /// every per-request field back to what `init` gives it. The head is replaced by `begin`;
    /// until then it lets go of the bytes it was read from (`RequestHead.dropReceivedBytes`;
    /// `emptyBytes` is an empty buffer), so a kept context holds nothing that keeps SwiftNIO from
    /// reusing the connection's receive buffer. The connection's own fields (client, port,
    /// scheme, loop) stay; `snapshot` and `listener` stay until `begin`. The engine calls it only
    /// when it holds the context alone.
    ///
    /// A field added to this class is reset here (`RequestContextResetTests` lists every field,
    /// and fails until a new one is listed).
    package func reset(emptyBytes: ByteBuffer) {
        head.dropReceivedBytes(keeping: emptyBytes)
        route = nil
        requestIDText = ""
        requestIDBits = nil
        if !pathCaptures.isEmpty { pathCaptures = [] }
        if !hostCaptures.isEmpty { hostCaptures = [] }
        requestBody = nil
        requestBodyComplete = false
        bodyBytesSeen = 0
        dryRun = false
        trace = nil
        poolID = nil
        endpoint = nil
        randomOverride = nil
        stagesRun = 0
        if !slotValues.isEmpty { slotValues = [] }
    }

    /// Starts the next request on a context `reset` cleared: its head, and the snapshot (and
    /// listener spec) it runs against, as `init` takes them.
    package func begin(head: consuming RequestHead, snapshot: consuming Snapshot, listener: consuming ListenerSpec) {
        self.head = head
        self.snapshot = snapshot
        self.listener = listener
    }

    /// Stages' per-request state, by slot type; empty (no allocation) until a stage stores one.
    @usableFromInline var slotValues: [(key: ObjectIdentifier, value: Any)] = []

    /// A stage's typed per-request slot: `ctx[slot: SeenBytes.self] = 42`. nil until set.
    @inlinable
    public subscript<K: ContextSlot>(slot key: K.Type) -> K.Value? {
        get {
            let id = ObjectIdentifier(key)
            for e in slotValues where e.key == id { return e.value as? K.Value }
            return nil
        }
        set {
            let id = ObjectIdentifier(key)
            if let i = slotValues.firstIndex(where: { $0.key == id }) {
                if let v = newValue { slotValues[i].value = v } else { slotValues.remove(at: i) }
            } else if let v = newValue {
                slotValues.append((id, v))
            }
        }
    }

    /// Lends the head in place. Passing `ctx.head` to a function copies it (a struct read out of
    /// a class), which retains its buffer and arrays; code on the hot path reads it through here.
    @inlinable
    public func withHead<R>(_ body: (inout RequestHead) -> R) -> R {
        body(&head)
    }

    /// Records a trace entry. The arguments are evaluated only when tracing.
    @inlinable
    public func record(_ stage: @autoclosure () -> String, looked: @autoclosure () -> String,
                       decided: @autoclosure () -> String, why: @autoclosure () -> String) {
        if let t = trace {
            t.entries.append(TraceEntry(stage: stage(), looked: looked(), decided: decided(), why: why(), atMicros: t.elapsedMicros))
        }
    }
}

/// A typed per-request slot a stage declares for its own state, so it never needs engine fields:
///
/// ```swift
/// enum BytesSeen: ContextSlot { typealias Value = Int64 }
/// ctx[slot: BytesSeen.self] = (ctx[slot: BytesSeen.self] ?? 0) + Int64(part.readableBytes)
/// ```
///
/// The slot type is the key: declare it `private` to the stage so no other code reads it.
public protocol ContextSlot {
    associatedtype Value
}
