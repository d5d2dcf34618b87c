//! A partition's high watermark as the consumer last saw it: librdkafka keeps the high watermark of every
//! fetch response it received, so the lag after each applied batch is read from memory instead of asking
//! the broker (a `ListOffsets` round trip per batch, on the broker that also serves the fetches).

use std::ffi::CString;

use rdkafka::consumer::Consumer;

/// The high watermark librdkafka cached for `topic`/`partition` (updated by every fetch response), or
/// `None` while it has none (no fetch response yet: then only a request to the broker can tell).
pub(crate) fn cached_high<C, K>(consumer: &K, topic: &str, partition: i32) -> Option<i64>
where
    C: rdkafka::consumer::ConsumerContext,
    K: Consumer<C>,
{
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` is borrowed; `topic` is a NUL-terminated
    // string that outlives the call; `low`/`high` are valid for writes. The function only reads
    // librdkafka's partition state under its own lock.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    // librdkafka reports RD_KAFKA_OFFSET_INVALID (-1001) for a watermark it does not know yet.
    let ok = err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
    (ok && high >= 0).then_some(high)
}
