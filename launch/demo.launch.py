"""ros2 launch tinyldm_ros demo.launch.py [data:=<SRN-layout views>] [rate_hz:=10.0] [use_rviz:=false]

nvs_node + demo_source: the source replays rendered views of a test object with camera_info and
broadcasts orbiting target cameras as TF frames (demo_target_0..2, which the node follows through
target_frames; not also as a PoseArray, which would double them); the node also synthesizes its
orbit_azimuths_deg views. RViz starts by default: pass use_rviz:=false where rviz2 is not installed
(launch stops with "package 'rviz2' not found" otherwise).
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from tinyldm_ros.dds_profile import launch_actions as fastdds_profile_actions

DEMO_TARGETS = ["demo_target_0", "demo_target_1", "demo_target_2"]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("tinyldm_ros")
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "model", default_value="", description="model folder (empty: models/default)"
            ),
            DeclareLaunchArgument(
                "data",
                default_value="",
                description="SRN-layout views to replay (instance or split; empty: the package's demo car)",
            ),
            DeclareLaunchArgument("rate_hz", default_value="10.0", description="camera rate"),
            DeclareLaunchArgument("use_rviz", default_value="true", description="also start RViz"),
            *fastdds_profile_actions(),
            Node(
                package="tinyldm_ros",
                executable="demo_source",
                name="demo_source",
                # Typed: a bare LaunchConfiguration is read as YAML, so rate_hz:=5 would be an integer.
                parameters=[
                    {
                        "data": ParameterValue(LaunchConfiguration("data"), value_type=str),
                        "rate_hz": ParameterValue(LaunchConfiguration("rate_hz"), value_type=float),
                        "publish_target_poses": False,
                    }
                ],
                output="screen",
            ),
            Node(
                package="tinyldm_ros",
                executable="nvs_node",
                name="nvs_node",
                parameters=[
                    PathJoinSubstitution([share, "config", "nvs.yaml"]),
                    {
                        "model_dir": ParameterValue(LaunchConfiguration("model"), value_type=str),
                        "target_frames": DEMO_TARGETS,
                        "object_distance": 1.3,  # the rendered cars: camera 1.3 m from the centre
                    },
                ],
                output="screen",
            ),
            Node(
                package="rviz2",
                executable="rviz2",
                arguments=["-d", PathJoinSubstitution([share, "config", "nvs.rviz"])],
                condition=IfCondition(LaunchConfiguration("use_rviz")),
            ),
        ]
    )
