/* No-op stand-in for libpcaudio.so.0 (pcaudio 1.2 ABI), so the Debian libespeak-ng1 package
 * loads on a machine without libpcaudio0 and its ALSA/PulseAudio dependency chain.
 * espeak-ng --stdout / synchronous mode never touches the audio object; if audio playback
 * mode is used anyway, every call succeeds and the samples are discarded.
 * Build: gcc -shared -fPIC -O2 -Wl,-soname,libpcaudio.so.0 -o libpcaudio.so.0 noop_pcaudio.c
 */
#include <stddef.h>
#include <stdint.h>

struct audio_object;

enum audio_object_format {
	AUDIO_OBJECT_FORMAT_ALAW,
	AUDIO_OBJECT_FORMAT_ULAW,
	AUDIO_OBJECT_FORMAT_S8,
	AUDIO_OBJECT_FORMAT_U8,
	AUDIO_OBJECT_FORMAT_S16LE,
	AUDIO_OBJECT_FORMAT_S16BE,
	AUDIO_OBJECT_FORMAT_U16LE,
	AUDIO_OBJECT_FORMAT_U16BE,
	AUDIO_OBJECT_FORMAT_S18LE,
	AUDIO_OBJECT_FORMAT_S18BE,
	AUDIO_OBJECT_FORMAT_U18LE,
	AUDIO_OBJECT_FORMAT_U18BE,
	AUDIO_OBJECT_FORMAT_S20LE,
	AUDIO_OBJECT_FORMAT_S20BE,
	AUDIO_OBJECT_FORMAT_U20LE,
	AUDIO_OBJECT_FORMAT_U20BE,
	AUDIO_OBJECT_FORMAT_S24LE,
	AUDIO_OBJECT_FORMAT_S24BE,
	AUDIO_OBJECT_FORMAT_U24LE,
	AUDIO_OBJECT_FORMAT_U24BE,
	AUDIO_OBJECT_FORMAT_S24_32LE,
	AUDIO_OBJECT_FORMAT_S24_32BE,
	AUDIO_OBJECT_FORMAT_U24_32LE,
	AUDIO_OBJECT_FORMAT_U24_32BE,
	AUDIO_OBJECT_FORMAT_S32LE,
	AUDIO_OBJECT_FORMAT_S32BE,
	AUDIO_OBJECT_FORMAT_U32LE,
	AUDIO_OBJECT_FORMAT_U32BE,
	AUDIO_OBJECT_FORMAT_ADPCM,
	AUDIO_OBJECT_FORMAT_FLOAT32LE,
	AUDIO_OBJECT_FORMAT_FLOAT32BE,
	AUDIO_OBJECT_FORMAT_FLOAT64LE,
	AUDIO_OBJECT_FORMAT_FLOAT64BE,
	AUDIO_OBJECT_FORMAT_IEC958LE,
	AUDIO_OBJECT_FORMAT_IEC958BE,
	AUDIO_OBJECT_FORMAT_AC3,
	AUDIO_OBJECT_FORMAT_DTS,
	AUDIO_OBJECT_FORMAT_MP2,
	AUDIO_OBJECT_FORMAT_MP3,
	AUDIO_OBJECT_FORMAT_AAC,
};

#define EXPORT __attribute__((visibility("default")))

/* A non-NULL dummy handle: libespeak-ng treats NULL from create_audio_device_object as
 * ENOMEM in audio-playback mode, so hand back something it can pass around but never
 * dereferences itself (it only passes it back to the functions below). */
static char dummy_object[64];

EXPORT struct audio_object *
create_audio_device_object(const char *device, const char *application_name, const char *description)
{
	(void)device; (void)application_name; (void)description;
	return (struct audio_object *)dummy_object;
}

EXPORT int
audio_object_open(struct audio_object *object, enum audio_object_format format, uint32_t rate, uint8_t channels)
{
	(void)object; (void)format; (void)rate; (void)channels;
	return 0;
}

EXPORT void
audio_object_close(struct audio_object *object)
{
	(void)object;
}

EXPORT void
audio_object_destroy(struct audio_object *object)
{
	(void)object;
}

EXPORT int
audio_object_write(struct audio_object *object, const void *data, size_t bytes)
{
	(void)object; (void)data; (void)bytes;
	return 0;
}

EXPORT int
audio_object_drain(struct audio_object *object)
{
	(void)object;
	return 0;
}

EXPORT int
audio_object_flush(struct audio_object *object)
{
	(void)object;
	return 0;
}

EXPORT const char *
audio_object_strerror(struct audio_object *object, int error)
{
	(void)object; (void)error;
	return "no audio output (no-op libpcaudio stub)";
}
