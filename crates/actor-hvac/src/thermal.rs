//! A small simulated thermal model of one room: what OBSERVATION reads. Pure and
//! deterministic (seeded), so it is unit-tested without a process.
//!
//! * Simulated time runs [`Params::time_scale`] times faster than real time (one real second
//!   is one simulated minute by default), so a simulated day passes in 24 real minutes and
//!   the readings move visibly within seconds.
//! * The outdoor temperature follows a daily cycle (coldest at 05:00, warmest at 17:00).
//! * The room loses or gains heat towards outdoors through its envelope (time constant
//!   [`Params::envelope_hours`]), the sun warms it by day, and the HVAC adds or removes
//!   heat at a fixed rate: it heats at night and cools on sunny afternoons.
//! * The mode is chosen against the setpoint with a deadband, so it does not chatter:
//!   heating starts below `setpoint - deadband` and stops at the setpoint; cooling mirrors it.
//! * Relative humidity drifts towards the outdoor value, drops as the room warms (warmer air
//!   holds more water), and cooling dehumidifies.
//! * Readings carry a little sensor noise.
//!
//! ```
//! use actor_hvac::thermal::{Mode, Params, RoomModel};
//! use std::time::Duration;
//! let mut room = RoomModel::new(Params::default(), 21.0, 7);
//! let reading = room.step(Duration::from_secs(1));
//! assert_eq!(reading.mode, Mode::Heating);  // a cold morning: 17.5 °C against 21 °C
//! ```

use serde::{Deserialize, Serialize};
use std::f64::consts::TAU;
use std::fmt;
use std::time::Duration;

/// What the HVAC is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// Adding heat.
    Heating,
    /// Removing heat (and moisture).
    Cooling,
    /// Off: the room is within the deadband.
    Idle,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Heating => "HEATING",
            Mode::Cooling => "COOLING",
            Mode::Idle => "IDLE",
        })
    }
}

/// The model's constants.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// Simulated hour of day at the start.
    pub start_hour: f64,
    /// Room temperature at the start, °C.
    pub start_temp: f64,
    /// Relative humidity at the start, %.
    pub start_humidity: f64,
    /// Mean outdoor temperature, °C.
    pub outdoor_mean: f64,
    /// Half the daily outdoor swing, °C.
    pub outdoor_swing: f64,
    /// Time constant of heat exchange with outdoors, simulated hours.
    pub envelope_hours: f64,
    /// How fast the HVAC heats or cools the room, °C per simulated hour.
    pub hvac_rate: f64,
    /// The sun's warming through the windows at noon, °C per simulated hour (none at night).
    pub solar_gain: f64,
    /// Half-width of the band around the setpoint in which the HVAC stays off, °C.
    pub deadband: f64,
    /// Mean outdoor relative humidity, %.
    pub humidity_mean: f64,
    /// Time constant of the humidity drift, simulated hours.
    pub humidity_hours: f64,
    /// Humidity removed by cooling, % per simulated hour.
    pub dehumidify_rate: f64,
    /// Sensor noise amplitude: ± this many °C, and ten times as many % of humidity.
    pub noise: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            time_scale: 60.0,
            start_hour: 6.0,
            start_temp: 17.5,
            start_humidity: 55.0,
            outdoor_mean: 13.0,
            outdoor_swing: 9.0,
            envelope_hours: 6.0,
            hvac_rate: 8.0,
            solar_gain: 2.5,
            deadband: 0.5,
            humidity_mean: 60.0,
            humidity_hours: 4.0,
            dehumidify_rate: 8.0,
            noise: 0.05,
        }
    }
}

/// One observation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Readings taken so far by this model (1 for the first).
    pub seq: u64,
    /// Simulated time of day, in seconds since midnight.
    pub time_of_day: u32,
    /// Room temperature as measured, °C.
    pub temperature: f64,
    /// Relative humidity as measured, %.
    pub humidity: f64,
    /// Outdoor temperature, °C.
    pub outdoor: f64,
    /// The setpoint the HVAC works towards, °C.
    pub setpoint: f64,
    /// What the HVAC is doing.
    pub mode: Mode,
}

impl fmt::Display for Reading {
    /// `seq=3 time=06:02 temp=17.62C humidity=54.8% setpoint=21.0C mode=HEATING outdoor=4.1C`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seq={} time={:02}:{:02} temp={:.2}C humidity={:.1}% setpoint={:.1}C mode={} outdoor={:.1}C",
            self.seq,
            self.time_of_day / 3600,
            (self.time_of_day / 60) % 60,
            self.temperature,
            self.humidity,
            self.setpoint,
            self.mode,
            self.outdoor
        )
    }
}

/// The room: its true state, advanced by [`RoomModel::step`].
#[derive(Debug, Clone)]
pub struct RoomModel {
    params: Params,
    temp: f64,
    humidity: f64,
    setpoint: f64,
    mode: Mode,
    /// Simulated seconds since midnight of the first day.
    clock: f64,
    seq: u64,
    rng: u64,
}

/// The longest simulated interval integrated in one go: keeps the explicit integration
/// stable and the hysteresis honest when a real interval is long.
const MAX_SUBSTEP: f64 = 30.0;

impl RoomModel {
    /// A room in its starting state, working towards `setpoint`; `seed` drives the noise.
    pub fn new(params: Params, setpoint: f64, seed: u64) -> Self {
        let mut room = Self {
            params,
            temp: params.start_temp,
            humidity: params.start_humidity,
            setpoint,
            mode: Mode::Idle,
            clock: params.start_hour * 3600.0,
            seq: 0,
            // xorshift must not start at zero.
            rng: seed | 1,
        };
        room.mode = room.next_mode();
        room
    }

    /// The setpoint now.
    pub fn setpoint(&self) -> f64 {
        self.setpoint
    }

    /// Sets a new setpoint; the mode follows at the next step. Returns the old one.
    pub fn set_setpoint(&mut self, setpoint: f64) -> f64 {
        std::mem::replace(&mut self.setpoint, setpoint)
    }

    /// The true (noise-free) room temperature.
    pub fn temperature(&self) -> f64 {
        self.temp
    }

    /// The true relative humidity.
    pub fn humidity(&self) -> f64 {
        self.humidity
    }

    /// The HVAC's mode now.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The outdoor temperature at simulated time `clock` (seconds): coldest at 05:00.
    pub fn outdoor_at(&self, clock: f64) -> f64 {
        let hour = clock / 3600.0;
        self.params.outdoor_mean - self.params.outdoor_swing * (TAU * (hour - 5.0) / 24.0).cos()
    }

    /// Advances the room by `real` elapsed time and takes a reading.
    pub fn step(&mut self, real: Duration) -> Reading {
        let mut left = real.as_secs_f64() * self.params.time_scale;
        while left > 0.0 {
            let dt = left.min(MAX_SUBSTEP);
            self.advance(dt);
            left -= dt;
        }
        self.seq += 1;
        let noise_t = self.noise() * self.params.noise;
        let noise_h = self.noise() * self.params.noise * 10.0;
        Reading {
            seq: self.seq,
            time_of_day: (self.clock.rem_euclid(86_400.0)) as u32,
            temperature: self.temp + noise_t,
            humidity: (self.humidity + noise_h).clamp(0.0, 100.0),
            outdoor: self.outdoor_at(self.clock),
            setpoint: self.setpoint,
            mode: self.mode,
        }
    }

    /// Integrates `dt` simulated seconds.
    fn advance(&mut self, dt: f64) {
        let p = self.params;
        self.mode = self.next_mode();
        let outdoor = self.outdoor_at(self.clock);
        let hvac = match self.mode {
            Mode::Heating => p.hvac_rate,
            Mode::Cooling => -p.hvac_rate,
            Mode::Idle => 0.0,
        };
        let hour = (self.clock / 3600.0).rem_euclid(24.0);
        let sun = if (6.0..18.0).contains(&hour) {
            p.solar_gain * (std::f64::consts::PI * (hour - 6.0) / 12.0).sin()
        } else {
            0.0
        };
        let d_temp = ((outdoor - self.temp) / p.envelope_hours + sun + hvac) * dt / 3600.0;
        self.temp += d_temp;

        // Outdoor air is damper at night, when it is cold.
        let outdoor_rh = p.humidity_mean + 15.0 * (TAU * (hour - 5.0) / 24.0).cos();
        let dehumidify = if self.mode == Mode::Cooling {
            p.dehumidify_rate
        } else {
            0.0
        };
        let d_rh = ((outdoor_rh - self.humidity) / p.humidity_hours - dehumidify) * dt / 3600.0
            // About 4 points of relative humidity per °C of warming, at room conditions.
            - 4.0 * d_temp;
        self.humidity = (self.humidity + d_rh).clamp(5.0, 95.0);
        self.clock += dt;
    }

    /// The mode for the current temperature, with hysteresis.
    fn next_mode(&self) -> Mode {
        let band = self.params.deadband;
        match self.mode {
            Mode::Heating if self.temp < self.setpoint => Mode::Heating,
            Mode::Cooling if self.temp > self.setpoint => Mode::Cooling,
            _ if self.temp < self.setpoint - band => Mode::Heating,
            _ if self.temp > self.setpoint + band => Mode::Cooling,
            _ => Mode::Idle,
        }
    }

    /// Uniform noise in -1..1 (xorshift64).
    fn noise(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn room(start_temp: f64, setpoint: f64) -> RoomModel {
        let params = Params {
            start_temp,
            ..Params::default()
        };
        RoomModel::new(params, setpoint, 42)
    }

    #[test]
    fn a_cold_room_heats_towards_the_setpoint() {
        let mut r = room(15.0, 21.0);
        let first = r.step(SECOND);
        assert_eq!(first.mode, Mode::Heating);
        for _ in 0..30 {
            r.step(SECOND);
        }
        assert!(r.temperature() > 15.5, "warmed: {}", r.temperature());
    }

    #[test]
    fn a_hot_room_cools_and_cooling_dries_the_air() {
        let mut r = room(28.0, 21.0);
        let first = r.step(SECOND);
        assert_eq!(first.mode, Mode::Cooling);
        for _ in 0..30 {
            r.step(SECOND);
        }
        assert!(r.temperature() < 27.0, "cooled: {}", r.temperature());
        // The same room without dehumidification ends damper.
        let params = Params {
            start_temp: 28.0,
            dehumidify_rate: 0.0,
            ..Params::default()
        };
        let mut wet = RoomModel::new(params, 21.0, 42);
        for _ in 0..31 {
            wet.step(SECOND);
        }
        assert!(
            r.humidity() < wet.humidity() - 2.0,
            "{} vs {}",
            r.humidity(),
            wet.humidity()
        );
    }

    #[test]
    fn within_the_deadband_the_hvac_is_off() {
        let mut r = room(21.3, 21.0);
        assert_eq!(r.step(Duration::from_millis(100)).mode, Mode::Idle);
        let mut r = room(20.6, 21.0);
        assert_eq!(r.step(Duration::from_millis(100)).mode, Mode::Idle);
    }

    #[test]
    fn heating_runs_on_to_the_setpoint_then_stops() {
        let mut r = room(20.0, 21.0);
        let mut saw_heating = false;
        for _ in 0..600 {
            let reading = r.step(SECOND);
            if reading.mode == Mode::Heating {
                saw_heating = true;
                assert!(r.temperature() < 21.0 + 0.1);
            }
            if saw_heating && reading.mode == Mode::Idle {
                assert!(r.temperature() >= 20.95, "stopped at {}", r.temperature());
                return;
            }
        }
        panic!("heating never stopped");
    }

    #[test]
    fn over_a_simulated_day_the_room_stays_near_the_setpoint() {
        let mut r = room(17.5, 21.0);
        // Two simulated hours to get there, then a whole day (1440 readings of one minute).
        for _ in 0..120 {
            r.step(SECOND);
        }
        let mut worst: f64 = 0.0;
        let mut switches = 0;
        let mut last = r.mode();
        let mut modes = std::collections::HashSet::new();
        for _ in 0..1440 {
            let reading = r.step(SECOND);
            worst = worst.max((reading.temperature - 21.0).abs());
            if reading.mode != last {
                switches += 1;
                last = reading.mode;
            }
            modes.insert(reading.mode);
            assert!((0.0..=100.0).contains(&reading.humidity));
        }
        assert!(worst < 1.0, "drifted {worst} C from the setpoint");
        // Hysteresis: cycles of minutes, not a switch every reading.
        assert!(switches < 400, "{switches} mode switches in a day");
        // The daily cycle makes it both heat (night) and cool (afternoon).
        assert!(modes.contains(&Mode::Heating) && modes.contains(&Mode::Cooling));
    }

    #[test]
    fn a_new_setpoint_changes_the_mode() {
        let mut r = room(21.0, 21.0);
        r.step(SECOND);
        assert_eq!(r.set_setpoint(16.0), 21.0);
        let reading = r.step(SECOND);
        assert_eq!(reading.setpoint, 16.0);
        assert_eq!(reading.mode, Mode::Cooling);
    }

    #[test]
    fn the_outdoor_cycle_is_coldest_at_five_and_warmest_at_seventeen() {
        let r = room(20.0, 21.0);
        let p = Params::default();
        assert!((r.outdoor_at(5.0 * 3600.0) - (p.outdoor_mean - p.outdoor_swing)).abs() < 1e-9);
        assert!((r.outdoor_at(17.0 * 3600.0) - (p.outdoor_mean + p.outdoor_swing)).abs() < 1e-9);
    }

    #[test]
    fn readings_are_deterministic_per_seed_and_noisy_within_bounds() {
        let mut a = room(19.0, 21.0);
        let mut b = room(19.0, 21.0);
        for _ in 0..50 {
            let (ra, rb) = (a.step(SECOND), b.step(SECOND));
            assert_eq!(ra, rb);
            assert!((ra.temperature - a.temperature()).abs() <= Params::default().noise + 1e-12);
        }
    }

    #[test]
    fn a_reading_displays_as_key_values() {
        let mut r = room(17.5, 21.0);
        let text = r.step(SECOND).to_string();
        assert!(text.starts_with("seq=1 time=06:01 temp=17."), "{text}");
        assert!(
            text.contains(" setpoint=21.0C mode=HEATING outdoor="),
            "{text}"
        );
    }

    #[test]
    fn a_long_interval_is_integrated_in_small_steps() {
        let mut one = room(15.0, 21.0);
        one.step(Duration::from_secs(60));
        let mut many = room(15.0, 21.0);
        for _ in 0..120 {
            many.step(Duration::from_millis(500));
        }
        assert!((one.temperature() - many.temperature()).abs() < 0.05);
    }
}
