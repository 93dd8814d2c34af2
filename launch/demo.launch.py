"""ros2 launch tinyldm_ros demo.launch.py [data:=<SRN-layout views>] [use_rviz:=true]

nvs_node + demo_source: the source replays rendered views of a test object with camera_info and
publishes orbiting target cameras as TF frames (demo_target_0..2, which the node follows through
target_frames) and as a PoseArray; the node also synthesizes its orbit_azimuths_deg views.
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

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
            Node(
                package="tinyldm_ros",
                executable="demo_source",
                name="demo_source",
                parameters=[{"data": LaunchConfiguration("data"), "rate_hz": LaunchConfiguration("rate_hz")}],
                output="screen",
            ),
            Node(
                package="tinyldm_ros",
                executable="nvs_node",
                name="nvs_node",
                parameters=[
                    PathJoinSubstitution([share, "config", "nvs.yaml"]),
                    {
                        "model_dir": LaunchConfiguration("model"),
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
